"""Colander schemas: the request to send email and the documents the service answers with.

They are the single source for validation, the SPORE description and OpenAPI.
"""

import re

import colander
from email_validator import EmailNotValidError

from ..mail.templates import RESERVED_VARIABLES
from .addresses import ascii_address

MAX_SUBJECT_LENGTH = 998
MAX_NAME_LENGTH = 256
MAX_VARS = 50
MAX_VAR_LENGTH = 10000

# Line breaks of any kind (and NUL) would let a value start a new header or SMTP line; the
# other control characters (all of C0 and C1 but TAB) have no place in a one-line value.
_LINE_BREAKS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
# An RFC 2047 encoded word. The email package decodes one found in a header value before
# writing the header out again, so "=?utf-8?b?...?=" could smuggle a line break (a new
# header) or another address into the message: such values are refused.
_ENCODED_WORD = "=?"
_VAR_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}\Z")


class StrictString(colander.String):
    """A string that must arrive as a JSON string (colander would turn 5 into "5")."""

    def deserialize(self, node, cstruct):
        if cstruct is not colander.null and not isinstance(cstruct, str):
            raise colander.Invalid(node, "Must be a string")
        return super().deserialize(node, cstruct)


def single_line(node, value):
    """Reject values with line breaks or NUL."""
    if _LINE_BREAKS.search(value):
        raise colander.Invalid(node, "Must not contain line breaks or control characters")


def header_text(node, value):
    """A value written into a header: one line, and no RFC 2047 encoded word (``=?``)."""
    single_line(node, value)
    if _ENCODED_WORD in value:
        raise colander.Invalid(node, "Must not contain '=?' (it would be read as encoded text)")


def no_nul(node, value):
    """Reject NUL, which no mail body may carry."""
    if "\x00" in value:
        raise colander.Invalid(node, "Must not contain NUL characters")


def checked_address(node, value):
    """Validate one address with email-validator (no DNS) and return its ASCII form."""
    if not isinstance(value, str):
        raise colander.Invalid(node, "Invalid email address: must be a string")
    if _ENCODED_WORD in value:
        # Legal in a local part, yet some mail readers decode it as an encoded word.
        raise colander.Invalid(node, "Invalid email address: must not contain '=?'")
    try:
        # One address per recipient: "a@x.org, b@y.org" is not an address and fails here.
        return ascii_address(value)
    except EmailNotValidError as exc:
        raise colander.Invalid(node, f"Invalid email address: {exc}") from None


class Recipient(colander.SchemaType):
    """An address string, or ``{"email", "name"?, "vars"?}``; deserializes to the object form."""

    def deserialize(self, node, cstruct):
        if cstruct is colander.null:
            return cstruct
        if isinstance(cstruct, str):
            return {"email": checked_address(node, cstruct), "name": "", "vars": {}}
        if not isinstance(cstruct, dict):
            raise colander.Invalid(node, "Must be an email address or an object with 'email'")
        unknown = sorted(set(cstruct) - {"email", "name", "vars"})
        if unknown:
            raise colander.Invalid(node, f"Unknown fields: {', '.join(unknown)}")
        return {
            "email": checked_address(node, cstruct.get("email")),
            "name": _display_name(node, cstruct.get("name", "")),
            "vars": _recipient_vars(node, cstruct.get("vars", {})),
        }

    def serialize(self, node, appstruct):
        return appstruct


def _display_name(node, name):
    if name is None:
        return ""
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH:
        raise colander.Invalid(node, f"name must be a string of at most {MAX_NAME_LENGTH} chars")
    header_text(node, name)
    return name


def _recipient_vars(node, variables):
    if variables is None:
        return {}
    if not isinstance(variables, dict) or len(variables) > MAX_VARS:
        raise colander.Invalid(node, f"vars must be an object of at most {MAX_VARS} strings")
    for key, value in variables.items():
        if not _VAR_NAME.match(key) or key in RESERVED_VARIABLES:
            raise colander.Invalid(
                node, f"vars name {key[:64]!r} must be an identifier and not a reserved name"
            )
        if not isinstance(value, str) or len(value) > MAX_VAR_LENGTH:
            raise colander.Invalid(node, f"vars.{key} must be a string of at most 10000 chars")
        single_line(node, value)
    return dict(variables)


@colander.deferred
def _recipients_length(node, kw):
    maximum = kw["max_recipients"]
    return colander.Length(min=1, max=maximum, max_err=f"At most {maximum} recipients per job")


@colander.deferred
def _content_size(node, kw):
    maximum = kw["max_content_bytes"]

    def validate(node, value):
        if len(value.encode("utf-8", "surrogatepass")) > maximum:
            raise colander.Invalid(node, f"content is larger than {maximum} bytes (UTF-8)")
        no_nul(node, value)

    return validate


class Sender(colander.SchemaType):
    """An optional From address; which domains a client may use is checked per key."""

    def deserialize(self, node, cstruct):
        if cstruct is colander.null:
            return cstruct
        return checked_address(node, cstruct)

    def serialize(self, node, appstruct):
        return appstruct


@colander.deferred
def _known_template(node, kw):
    names = kw["templates"]
    return colander.OneOf(names, msg_err=f"Unknown template; available: {', '.join(names)}")


class Recipients(colander.SequenceSchema):
    recipient = colander.SchemaNode(Recipient())


class SendEmailBody(colander.MappingSchema):
    """The JSON body of ``POST /email``."""

    recipients = Recipients(validator=_recipients_length)
    subject = colander.SchemaNode(
        StrictString(),
        validator=colander.All(colander.Length(min=1, max=MAX_SUBJECT_LENGTH), header_text),
    )
    content = colander.SchemaNode(StrictString(allow_empty=True), validator=_content_size)
    template = colander.SchemaNode(StrictString(), missing="default", validator=_known_template)
    # "from" is a Python keyword, hence the attribute name.
    from_ = colander.SchemaNode(Sender(), name="from", missing=colander.drop)

    @staticmethod
    def schema_type():
        """Unknown fields are an error, not silently dropped."""
        return colander.Mapping(unknown="raise")


class SendEmailRequest(colander.MappingSchema):
    body = SendEmailBody()


class TaskPath(colander.MappingSchema):
    task_id = colander.SchemaNode(colander.String())


class EmailStatusRequest(colander.MappingSchema):
    path = TaskPath()


class AcceptedResponse(colander.MappingSchema):
    """The body of a 202: the new job and where to follow it."""

    id = colander.SchemaNode(colander.String())
    status = colander.SchemaNode(colander.String())
    total = colander.SchemaNode(colander.Int())
    status_url = colander.SchemaNode(colander.String())


class RecipientError(colander.MappingSchema):
    recipient = colander.SchemaNode(colander.String())
    code = colander.SchemaNode(colander.Int(), missing=None)
    message = colander.SchemaNode(colander.String())


class RecipientErrors(colander.SequenceSchema):
    error = RecipientError()


class LastError(colander.MappingSchema):
    """Why a job is retrying: the SMTP code (null when the relay could not be reached)."""

    code = colander.SchemaNode(colander.Int(), missing=None)
    message = colander.SchemaNode(colander.String())


class EmailStatusResponse(colander.MappingSchema):
    """The status document of a job; ``sent + failed + pending == total``."""

    id = colander.SchemaNode(colander.String())
    status = colander.SchemaNode(
        colander.String(),
        validator=colander.OneOf(
            ["queued", "sending", "retrying", "sent", "partially_failed", "failed", "cancelled"]
        ),
    )
    total = colander.SchemaNode(colander.Int())
    sent = colander.SchemaNode(colander.Int())
    failed = colander.SchemaNode(colander.Int())
    pending = colander.SchemaNode(colander.Int())
    created_at = colander.SchemaNode(colander.String())
    updated_at = colander.SchemaNode(colander.String())
    finished_at = colander.SchemaNode(colander.String(), missing=None)
    errors = RecipientErrors()
    last_error = LastError(
        missing=colander.drop,
        description="While retrying: the error of the last attempt",
    )
    next_attempt_at = colander.SchemaNode(
        colander.String(),
        missing=colander.drop,
        description="While retrying: when the next attempt is due (UTC)",
    )


class ErrorDetail(colander.MappingSchema):
    location = colander.SchemaNode(colander.String())
    name = colander.SchemaNode(colander.String())
    description = colander.SchemaNode(colander.String())


class ErrorDetails(colander.SequenceSchema):
    error = ErrorDetail()


class ErrorResponse(colander.MappingSchema):
    """Cornice's error document."""

    status = colander.SchemaNode(colander.String())
    errors = ErrorDetails()


# Responses as cornice_swagger reads them: a "body" and its "headers". The views list them in
# ``response_schemas``, which feeds OpenAPI and the SPORE ``expected_status``.


class LocationHeader(colander.MappingSchema):
    location = colander.SchemaNode(
        colander.String(), name="Location", description="The job's status URL"
    )


class RetryAfterHeader(colander.MappingSchema):
    retry_after = colander.SchemaNode(
        colander.Int(), name="Retry-After", description="Seconds to wait before trying again"
    )


class Accepted(colander.MappingSchema):
    body = AcceptedResponse()
    headers = LocationHeader()


class Status(colander.MappingSchema):
    body = EmailStatusResponse()


class Error(colander.MappingSchema):
    body = ErrorResponse()


class Unavailable(colander.MappingSchema):
    body = ErrorResponse()
    headers = RetryAfterHeader()
