"""The HTTP API: ``POST /email`` and ``GET /email/{task_id}``."""

from cornice import Service
from pyramid.httpexceptions import HTTPNotFound

from ..jobs.dispatch import submit, suppressed_recipients
from ..jobs.records import new_id
from ..logs import bind
from . import schemas
from .auth import SEND_PERMISSION
from .errors import error_response, excerpt
from .idempotency import idempotent_request, kept
from .limits import within_limits
from .sender_policy import allowed_sender
from .validators import json_body_validator

email = Service(
    name="send_email",
    path="/email",
    description="Send one message per recipient, rendered from a template.",
    permission=SEND_PERMISSION,
)
email_status = Service(
    name="get_email_status",
    path="/email/{task_id}",
    description="How far an email job is, recipient by recipient.",
    permission=SEND_PERMISSION,
)

# Every status each endpoint can answer, with its document: OpenAPI's responses and SPORE's
# expected_status are generated from these.
_UNAVAILABLE = schemas.Unavailable(description="Redis cannot answer; nothing was recorded")
SEND_EMAIL_RESPONSES = {
    "202": schemas.Accepted(description="The job is recorded and queued"),
    "400": schemas.Error(description="Invalid fields, each named in errors"),
    "401": schemas.Error(description="No API key, or an unknown one"),
    "403": schemas.Error(description="The key may not send from this address"),
    "413": schemas.Error(description="The body is larger than emailsvc.max_body_bytes"),
    "409": schemas.Unavailable(
        description="A request with this Idempotency-Key is still being processed; retry "
        "after the delay"
    ),
    "415": schemas.Error(description="The body is not application/json"),
    "422": schemas.Error(description="This Idempotency-Key was used with another body"),
    "429": schemas.Limited(description="Over this client's limits; retry after the delay"),
    "503": _UNAVAILABLE,
}
EMAIL_STATUS_RESPONSES = {
    "200": schemas.Status(description="The job's status document"),
    "401": schemas.Error(description="No API key, or an unknown one"),
    "404": schemas.Error(description="No job with this id"),
    "503": _UNAVAILABLE,
}


@email.post(
    content_type="application/json",
    schema=schemas.SendEmailRequest,
    # In this order: a refused sender must not consume the client's limits, nor its
    # Idempotency-Key; a replayed answer sends nothing and is not counted either.
    validators=(json_body_validator, allowed_sender, idempotent_request, within_limits),
    response_schemas=SEND_EMAIL_RESPONSES,
)
def send_email(request):
    """Accept an email job: one message per recipient, rendered from the named template.

    Answers 202 at once with the job id; delivery happens in the background. A request
    sent again with the same Idempotency-Key gets the first 202 again, and no new job.
    """
    body, assembly = request.validated["body"], request.registry.emailsvc
    suppressed = suppressed_recipients(assembly, body, request.identity)
    job_id, total = new_id(), len(body["recipients"])
    status_url = request.route_url(email_status.name, task_id=job_id)
    answer = {
        "id": job_id,
        # A job whose every recipient is suppressed has nothing to send: it ends now.
        "status": "failed" if len(suppressed) == total else "queued",
        "total": total,
        "suppressed": len(suppressed),
        "status_url": status_url,
    }
    submit(
        assembly,
        body,
        request.identity,
        request.request_id,
        suppressed=suppressed,
        public_url=request.application_url,
        job_id=job_id,
        # The answer a retry with the same Idempotency-Key gets (idempotency.py).
        claim=request.idempotency_claim,
        answer=answer,
    )
    kept(request)
    bind(job=job_id)
    assembly.metrics.job_accepted(request.identity, total)
    request.response.status_code = 202
    request.response.headers["Location"] = status_url
    return answer


@email_status.get(schema=schemas.EmailStatusRequest, response_schemas=EMAIL_STATUS_RESPONSES)
def get_email_status(request):
    """Report an email job's progress: counters, status, timestamps and per-recipient errors."""
    task_id = request.matchdict["task_id"]
    store = request.registry.emailsvc.jobs
    if _plausible_id(task_id):
        bind(job=task_id)
    # Another client's job answers 404 like an unknown one: ids are not for enumeration.
    doc = store.status(task_id, request.identity) if _plausible_id(task_id) else None
    if doc is None:
        description = f"No job with id {excerpt(task_id)}"
        return error_response(HTTPNotFound, "path", "task_id", description)
    return doc


def _plausible_id(task_id):
    # Ids are uuid4 hex; anything else cannot exist, so Redis is not asked.
    return len(task_id) == 32 and all(c in "0123456789abcdef" for c in task_id)


def includeme(config):
    """``POST /email`` and ``GET /email/{task_id}``."""
    config.scan(__name__)
