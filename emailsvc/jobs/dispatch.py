"""Recording a job and enqueuing its chunks, all or nothing."""

import logging

from .records import new_id
from .tasks import publish_chunk

log = logging.getLogger(__name__)


def chunks(recipients, size):
    """Yield ``(offset, recipients)`` slices of at most ``size`` recipients."""
    for offset in range(0, len(recipients), size):
        yield offset, recipients[offset : offset + size]


def submit(assembly, body, client, request_id=None):
    """Record ``client``'s job for ``body`` and enqueue its chunks; return the job's id.

    If anything fails on the way the job record is removed before the error propagates,
    so a client that gets an error never finds a half-written job. Chunks already
    published for it then find no job and do nothing.
    """
    job_id = new_id()
    recipients = body["recipients"]
    message = {
        "subject": body["subject"],
        "content": body["content"],
        "template": body["template"],
        "client": client,
        # Empty: the service's own sender (emailsvc.sender).
        "sender": body.get("from", ""),
        # Lets the worker's log lines for this job name the request that created it.
        "request_id": request_id or "",
    }
    store = assembly.jobs
    store.create(job_id, len(recipients), message)
    try:
        for offset, chunk in chunks(recipients, assembly.settings["emailsvc.chunk_size"]):
            publish_chunk(assembly.celery, job_id, offset, chunk)
    except Exception:
        log.exception("job %s could not be enqueued; its record is removed", job_id)
        try:
            store.delete(job_id)
        except Exception:
            log.exception("job %s: removing the record failed too", job_id)
        raise
    return job_id
