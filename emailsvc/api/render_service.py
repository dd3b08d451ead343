"""``POST /email/render``: the message one recipient of a job would get, sent to nobody."""

from datetime import UTC, datetime
from email.utils import make_msgid

from cornice import Service
from pyramid.httpexceptions import HTTPBadRequest

from ..mail.compose import dump_content
from ..mail.templates import RenderError
from . import schemas
from .auth import SEND_PERMISSION
from .errors import error_response
from .limits import within_request_limit
from .sender_policy import allowed_sender
from .validators import json_body_validator

render = Service(
    name="render_email",
    path="/email/render",
    description="Render one recipient's message of a job, without recording or sending it.",
    permission=SEND_PERMISSION,
)

RENDER_EMAIL_RESPONSES = {
    "200": schemas.Rendered(description="The message that recipient would get"),
    "400": schemas.Error(description="Invalid fields, each named in errors"),
    "401": schemas.Error(description="No API key, or an unknown one"),
    "403": schemas.Error(description="The key may not send from this address"),
    "413": schemas.Error(description="The body is larger than emailsvc.max_body_bytes"),
    "415": schemas.Error(description="The body is not application/json"),
    "429": schemas.Unavailable(description="Over this client's request limit"),
    "503": schemas.Unavailable(description="Redis cannot answer"),
}


@render.post(
    content_type="application/json",
    schema=schemas.RenderEmailRequest,
    validators=(json_body_validator, allowed_sender, within_request_limit),
    response_schemas=RENDER_EMAIL_RESPONSES,
)
def render_email(request):
    """Render the message recipient ``recipient`` (an index, 0 by default) of this job would get.

    The body is that of ``POST /email``, validated the same way; nothing is recorded or
    sent, and only the client's request limit counts it.
    """
    body = request.validated["body"]
    assembly = request.registry.emailsvc
    # The job as a worker reads it from Redis, so that the message is the one it would send.
    job = {
        "subject": body["subject"],
        "content": body.get("content", ""),
        "template": body["template"],
        "sender": body.get("from", ""),
        "stored_content": dump_content(body),
        "client": request.identity,
        "stream": body["stream"],
        # A preview's unsubscribe links name no job: they unsubscribe nobody.
        "unsubscribe_base": assembly.settings["emailsvc.public_url"] or request.application_url,
    }
    composer = assembly.deliverer.composer(job, datetime.now(UTC))
    recipient = body["recipients"][body["recipient"]]
    try:
        msg, (subject, text, html) = composer.compose(
            recipient, make_msgid(domain=composer.sender.domain or None)
        )
    except (RenderError, ValueError, TypeError) as exc:
        # e.g. the template uses a var this recipient lacks: its job would fail it.
        name = f"recipients.{body['recipient']}"
        return error_response(HTTPBadRequest, "body", name, str(exc))
    return {"mime": msg.as_string(), "subject": subject, "text": text, "html": html or None}


def includeme(config):
    """``POST /email/render`` (before ``/email/{task_id}``, whose route would take it)."""
    config.scan(__name__)
