"""Recording a job and enqueuing its chunks, all or nothing."""

import logging

from .jobs import new_id

log = logging.getLogger(__name__)


def chunks(recipients, size):
    """Yield ``(offset, recipients)`` slices of at most ``size`` recipients."""
    for offset in range(0, len(recipients), size):
        yield offset, recipients[offset : offset + size]


def submit(store, task, body, chunk_size, client):
    """Record ``client``'s job for ``body`` and enqueue one ``task`` per chunk; return its id.

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
    }
    store.create(job_id, len(recipients), message)
    try:
        for offset, chunk in chunks(recipients, chunk_size):
            # A short argsrepr keeps addresses out of broker headers and worker logs, and
            # spares Celery from formatting every recipient of a large job.
            argsrepr = f"({job_id!r}, {offset}, <{len(chunk)} recipients>)"
            task.apply_async(args=(job_id, offset, chunk), argsrepr=argsrepr)
    except Exception:
        log.exception("job %s could not be enqueued; its record is removed", job_id)
        try:
            store.delete(job_id)
        except Exception:
            log.exception("job %s: removing the record failed too", job_id)
        raise
    return job_id
