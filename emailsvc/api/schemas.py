"""Colander schemas: the request to send email and the documents the service answers with.

They are the single source for validation, the SPORE description and OpenAPI.
"""

import base64
import binascii
import posixpath
import re

import colander
from email_validator import EmailNotValidError

from ..jobs.suppressions import IGNORABLE
from ..jobs.suppressions import REASONS as SUPPRESSION_REASONS
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

MAX_FILENAME_LENGTH = 255
MAX_HEADERS = 20
MAX_HEADER_VALUE_LENGTH = 900
MAX_PDF_ATTACHMENTS = 5
# RFC 5322's field-name: printable US-ASCII but the colon; bounded like a header line.
_FIELD_NAME = re.compile(r"^[!-9;-~]{1,76}\Z")
# A header value of ours: printable US-ASCII, spaces and tabs, on one line.
_HEADER_VALUE = re.compile(r"^[\x20-\x7e\t]+\Z")
# Headers the service writes itself, or that only relays write: a client may not set them.
OWNED_HEADERS = frozenset(
    {"from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version", "sender"}
    | {"reply-to", "return-path", "received", "dkim-signature", "domainkey-signature"}
    | {"arc-seal", "arc-message-signature", "arc-authentication-results", "received-spf"}
    | {"authentication-results", "delivered-to", "x-original-to", "envelope-to"}
    | {"x-envelope-to", "x-envelope-from", "errors-to", "disposition-notification-to"}
)
OWNED_HEADER_PREFIXES = ("content-", "resent-")
# A MIME type without parameters (RFC 6838's restricted names).
_CONTENT_TYPE = re.compile(
    r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\Z", re.IGNORECASE
)
# A Content-ID's inside, referenced from the HTML as "cid:<it>": a dot-atom, "@" allowed.
_CONTENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}(@[A-Za-z0-9][A-Za-z0-9.-]{0,99})?\Z")
# Attachments mail providers refuse (Gmail's list): by the file's extension...
BLOCKED_EXTENSIONS = frozenset(
    "ade adp apk appx appxbundle bat cab chm cmd com cpl diagcab diagcfg diagpack dll dmg "
    "ex ex_ exe hta img ins iso isp jar jnlp js jse lib lnk mde mjs msc msi msix msixbundle "
    "msp mst nsh pif ps1 psm1 reg scr sct shb sys vb vbe vbs vhd vxd wsc wsf wsh xll".split()
)
# ... and by the type the client declares.
BLOCKED_TYPES = frozenset(
    {"application/x-msdownload", "application/x-msdos-program", "application/x-dosexec"}
    | {"application/x-executable", "application/vnd.microsoft.portable-executable"}
    | {"application/x-ms-installer", "application/x-msi", "application/x-ms-shortcut"}
    | {"application/x-bat", "application/x-msdos-batch", "application/hta"}
    | {"application/javascript", "application/x-javascript", "application/ecmascript"}
    | {"text/javascript", "text/ecmascript", "text/vbscript", "application/x-vbscript"}
    | {"application/java-archive", "application/x-java-archive", "application/x-java-jnlp-file"}
    | {"application/vnd.ms-cab-compressed", "application/x-apple-diskimage"}
    | {"application/x-iso9660-image", "application/vnd.android.package-archive"}
    | {"application/x-powershell", "application/x-sh", "application/x-csh"}
)
# A PDF filename's placeholders, replaced by the recipient's vars (mail.compose).
_PLACEHOLDER = re.compile(r"\$\{[A-Za-z][A-Za-z0-9_]{0,63}\}")


class StrictString(colander.String):
    """A string that must arrive as a JSON string (colander would turn 5 into "5")."""

    def deserialize(self, node, cstruct):
        if cstruct is not colander.null and not isinstance(cstruct, str):
            raise colander.Invalid(node, "Must be a string")
        return super().deserialize(node, cstruct)


class StrictInt(colander.Int):
    """A whole number that must arrive as a JSON number ("5", 5.5 and true are refused)."""

    def deserialize(self, node, cstruct):
        if cstruct is not colander.null and (
            isinstance(cstruct, bool) or not isinstance(cstruct, int)
        ):
            raise colander.Invalid(node, "Must be a whole number")
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
    """An address string, or ``{"email", "name"?, "vars"?, "cc"?, "bcc"?}``.

    Deserializes to the object form; ``cc`` and ``bcc`` (lists of addresses, each a string
    or ``{"email", "name"?}``) are kept only when given, so a plain recipient is stored as
    before.
    """

    def deserialize(self, node, cstruct):
        if cstruct is colander.null:
            return cstruct
        if isinstance(cstruct, str):
            return {"email": checked_address(node, cstruct), "name": "", "vars": {}}
        if not isinstance(cstruct, dict):
            raise colander.Invalid(node, "Must be an email address or an object with 'email'")
        unknown = sorted(set(cstruct) - {"email", "name", "vars", "cc", "bcc"})
        if unknown:
            raise colander.Invalid(node, f"Unknown fields: {', '.join(unknown)}")
        recipient = {
            "email": checked_address(node, cstruct.get("email")),
            "name": _display_name(node, cstruct.get("name", "")),
            "vars": _recipient_vars(node, cstruct.get("vars", {})),
        }
        for field in ("cc", "bcc"):
            if cstruct.get(field):
                recipient[field] = _copies(node, field, cstruct[field])
        return recipient

    def serialize(self, node, appstruct):
        return appstruct


def _copies(node, field, copies):
    """A recipient's cc or bcc: each address validated like a recipient's own."""
    if not isinstance(copies, list):
        raise colander.Invalid(node, f"{field} must be a list of email addresses")
    checked = []
    for copy in copies:
        if isinstance(copy, dict):
            unknown = sorted(set(copy) - {"email", "name"})
            if unknown:
                raise colander.Invalid(node, f"{field}: unknown fields: {', '.join(unknown)}")
            email, name = copy.get("email"), copy.get("name", "")
        else:
            email, name = copy, ""
        try:
            entry = {"email": checked_address(node, email), "name": _display_name(node, name)}
        except colander.Invalid as exc:
            raise colander.Invalid(node, f"{field}: {exc.msg}") from None
        checked.append(entry)
    return checked


def envelope_count(recipients):
    """How many addresses a job's messages go to: each recipient with its cc and bcc."""
    return sum(1 + len(r.get("cc", ())) + len(r.get("bcc", ())) for r in recipients)


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
            # The same bound for content and html, each named in its own error.
            raise colander.Invalid(node, f"{node.name} is larger than {maximum} bytes (UTF-8)")
        no_nul(node, value)

    return validate


class EmailAddress(colander.SchemaType):
    """One email address, checked as a recipient's is; deserializes to its ASCII form."""

    def deserialize(self, node, cstruct):
        if cstruct is colander.null:
            return cstruct
        return checked_address(node, cstruct)

    def serialize(self, node, appstruct):
        return appstruct


class Sender(EmailAddress):
    """An optional From address; which domains a client may use is checked per key."""


@colander.deferred
def _known_template(node, kw):
    names = kw["templates"]
    return colander.OneOf(names, msg_err=f"Unknown template; available: {', '.join(names)}")


@colander.deferred
def _known_html_template(node, kw):
    names = kw["html_templates"]
    return colander.OneOf(
        names, msg_err=f"Unknown HTML template; available: {', '.join(names) or 'none'}"
    )


class Recipients(colander.SequenceSchema):
    recipient = colander.SchemaNode(Recipient())


class FileName(StrictString):
    """A file's name: one line as given, then reduced to its last path part."""

    def deserialize(self, node, cstruct):
        value = super().deserialize(node, cstruct)
        if value is colander.null:
            return value
        # Checked before the reduction, which could otherwise cut a line break away.
        header_text(node, value)
        return posixpath.basename(value.replace("\\", "/")).strip()


def safe_filename(node, value):
    """A filename that can be written into a header: one line, no encoded word, not empty."""
    header_text(node, value)
    if value in ("", ".", "..") or len(value) > MAX_FILENAME_LENGTH:
        raise colander.Invalid(
            node, f"Must be a file name of 1 to {MAX_FILENAME_LENGTH} characters"
        )
    extension = value.rpartition(".")[2].lower() if "." in value else ""
    if extension in BLOCKED_EXTENSIONS:
        raise colander.Invalid(node, f"Files of type .{extension} are refused by mail providers")


def content_type(node, value):
    """A MIME type without parameters, not multipart, not an executable."""
    if not _CONTENT_TYPE.match(value):
        raise colander.Invalid(node, "Must be a MIME type such as application/pdf")
    if value.lower().startswith(("multipart/", "message/")):
        raise colander.Invalid(node, "Must be the type of a file, not multipart/ or message/")
    if value.lower() in BLOCKED_TYPES:
        raise colander.Invalid(node, "Executable types are refused by mail providers")


def base64_content(node, value):
    """Standard base64 (line breaks allowed); its decoded size is checked per job."""
    try:
        base64.b64decode(_without_line_breaks(value), validate=True)
    except (binascii.Error, ValueError):
        raise colander.Invalid(node, "Must be base64 (RFC 4648, with padding)") from None


def _without_line_breaks(value):
    return value.replace("\r", "").replace("\n", "") if "\n" in value else value


def decoded_size(value):
    """The number of bytes a (valid) base64 string decodes to, without decoding it."""
    value = _without_line_breaks(value)
    return len(value) // 4 * 3 - value[-2:].count("=")


def content_id(node, value):
    """A Content-ID for ``cid:`` references: letters, digits, ``._+-``, one ``@``."""
    if not _CONTENT_ID.match(value):
        raise colander.Invalid(node, "Must be letters, digits and ._+- with at most one @")


def _lower(value):
    return value.lower() if isinstance(value, str) else value


def _normalized_base64(value):
    return _without_line_breaks(value) if isinstance(value, str) else value


class Attachment(colander.MappingSchema):
    """One file: base64 content, a name and a type; with ``content_id``, an inline image."""

    filename = colander.SchemaNode(
        FileName(),
        validator=safe_filename,
        description="Reduced to its base name; executable types (.exe, .js, ...) are refused",
    )
    content_type = colander.SchemaNode(
        StrictString(),
        preparer=_lower,
        validator=content_type,
        description="A MIME type such as application/pdf, without parameters",
    )
    content = colander.SchemaNode(
        StrictString(),
        preparer=_normalized_base64,
        validator=base64_content,
        description="The file's bytes in base64",
    )
    content_id = colander.SchemaNode(
        # An empty id is refused, not taken for a missing one.
        StrictString(allow_empty=True),
        missing=colander.drop,
        validator=content_id,
        description='Inline image: referenced from the HTML as "cid:<content_id>"',
    )

    @staticmethod
    def schema_type():
        return colander.Mapping(unknown="raise")


class Attachments(colander.SequenceSchema):
    attachment = Attachment()


class Headers(colander.SchemaType):
    """Custom headers, ``{"X-Campaign": "spring", ...}``: names of RFC 5322's grammar that
    the service does not own, values of one line of printable ASCII."""

    def deserialize(self, node, cstruct):
        if cstruct is colander.null:
            return cstruct
        if not isinstance(cstruct, dict) or len(cstruct) > MAX_HEADERS:
            raise colander.Invalid(node, f"Must be an object of at most {MAX_HEADERS} headers")
        seen = set()
        for name, value in cstruct.items():
            shown = name[:76] if _FIELD_NAME.match(name[:76]) else "this name"
            if not _FIELD_NAME.match(name):
                raise colander.Invalid(
                    node, "A header name is 1 to 76 printable ASCII characters, no colon"
                )
            lowered = name.lower()
            if lowered in OWNED_HEADERS or lowered.startswith(OWNED_HEADER_PREFIXES):
                raise colander.Invalid(node, f"Header {shown} is set by the service")
            if lowered in seen:
                raise colander.Invalid(node, f"Header {shown} is given twice")
            seen.add(lowered)
            if not isinstance(value, str) or not _HEADER_VALUE.match(value):
                raise colander.Invalid(
                    node, f"Header {shown}: the value must be one line of printable ASCII"
                )
            if len(value) > MAX_HEADER_VALUE_LENGTH or _ENCODED_WORD in value:
                raise colander.Invalid(
                    node,
                    f"Header {shown}: at most {MAX_HEADER_VALUE_LENGTH} characters, no '=?'",
                )
        return dict(cstruct)

    def serialize(self, node, appstruct):
        return appstruct


def pdf_filename(node, value):
    """A PDF's filename pattern: ``${var}`` placeholders, then a safe name ending in .pdf."""
    if "/" in value or "\\" in value:
        raise colander.Invalid(node, "Must be a file name, without path")
    safe_filename(node, _PLACEHOLDER.sub("x", value))
    if "${" in _PLACEHOLDER.sub("x", value):
        raise colander.Invalid(node, "Placeholders are ${name}, name a recipient's var")
    if not value.lower().endswith(".pdf"):
        raise colander.Invalid(node, "Must end with .pdf")


class PDFAttachment(colander.MappingSchema):
    """A PDF rendered per recipient from an HTML template, with that recipient's vars."""

    template = colander.SchemaNode(StrictString(), validator=_known_html_template)
    filename = colander.SchemaNode(
        StrictString(),
        validator=pdf_filename,
        description="e.g. invoice-${order}.pdf: ${name} takes the recipient's var",
    )

    @staticmethod
    def schema_type():
        return colander.Mapping(unknown="raise")


class PDFAttachments(colander.SequenceSchema):
    pdf_attachment = PDFAttachment()


@colander.deferred
def _job_rules(node, kw):
    """What holds across fields: text or HTML, attachment limits, copies, the pdf extra."""

    def validate(node, job):
        _check_job(node, job, kw)

    return validate


def _fail(node, field, message):
    error = colander.Invalid(node)
    error[field] = message
    raise error


def _check_job(node, job, kw):
    if "content" not in job and not job.get("html"):
        _fail(node, "content", "A job needs content (text), html, or both")
    attachments = job.get("attachments", [])
    if len(attachments) > kw["max_attachments"]:
        _fail(node, "attachments", f"At most {kw['max_attachments']} attachments per job")
    size = sum(decoded_size(a["content"]) for a in attachments)
    if size > kw["max_attachment_bytes"]:
        _fail(
            node,
            "attachments",
            f"Attachments are larger than {kw['max_attachment_bytes']} bytes (decoded)",
        )
    ids = [a["content_id"] for a in attachments if "content_id" in a]
    if ids and not job.get("html"):
        _fail(node, "attachments", "Inline images (content_id) need html that shows them")
    if len(set(ids)) != len(ids):
        _fail(node, "attachments", "Each content_id must be given once")
    if envelope_count(job["recipients"]) > kw["max_recipients"]:
        _fail(
            node,
            "recipients",
            f"At most {kw['max_recipients']} recipients per job, cc and bcc included",
        )
    if job.get("pdf_attachments") and not kw["pdf"]:
        _fail(
            node,
            "pdf_attachments",
            "PDF attachments need the pdf extra (pip install emailsvc[pdf]), "
            "which this server does not have",
        )
    if "recipient" in job and job["recipient"] >= len(job["recipients"]):
        _fail(
            node, "recipient", f"Must be below the number of recipients, {len(job['recipients'])}"
        )


STREAMS = ("transactional", "broadcast")


class IgnoredReasons(colander.SequenceSchema):
    reason = colander.SchemaNode(
        StrictString(),
        validator=colander.OneOf(
            sorted(IGNORABLE), msg_err="Only manual suppressions may be ignored"
        ),
    )


class SendEmailBody(colander.MappingSchema):
    """The JSON body of ``POST /email``."""

    recipients = Recipients(
        validator=_recipients_length,
        description='Addresses, or {"email", "name"?, "vars"?, "cc"?, "bcc"?}; cc and bcc '
        "(addresses) get the same message and count toward the recipient limit",
    )
    subject = colander.SchemaNode(
        StrictString(),
        validator=colander.All(colander.Length(min=1, max=MAX_SUBJECT_LENGTH), header_text),
        description="One line; a template's <name>.subject.txt may replace it per recipient",
    )
    content = colander.SchemaNode(
        StrictString(allow_empty=True),
        missing=colander.drop,
        validator=_content_size,
        description="The text; with html too, the message's text part",
    )
    html = colander.SchemaNode(
        StrictString(),
        missing=colander.drop,
        validator=_content_size,
        description="The HTML, inserted into the template's HTML as the client's markup",
    )
    template = colander.SchemaNode(
        StrictString(),
        missing="default",
        validator=_known_template,
        description="The template's name (its .txt, .pt and .subject.txt files)",
    )
    # "from" is a Python keyword, hence the attribute name.
    from_ = colander.SchemaNode(
        Sender(),
        name="from",
        missing=colander.drop,
        description="The From address, in a domain the client's key may use",
    )
    reply_to = colander.SchemaNode(
        Sender(), missing=colander.drop, description="The Reply-To address of every message"
    )
    headers = colander.SchemaNode(
        Headers(),
        missing=colander.drop,
        description="Custom headers (X-..., List-..., In-Reply-To, References, ...)",
    )
    attachments = Attachments(
        missing=colander.drop,
        description='Files, {"filename", "content_type", "content" (base64), "content_id"?}; '
        "with content_id, an inline image of the HTML",
    )
    pdf_attachments = PDFAttachments(
        missing=colander.drop,
        validator=colander.Length(max=MAX_PDF_ATTACHMENTS),
        description='PDFs rendered per recipient from an HTML template, {"template", "filename"}',
    )
    stream = colander.SchemaNode(
        # An empty stream is refused, not taken for a missing one.
        StrictString(allow_empty=True),
        missing="transactional",
        validator=colander.OneOf(STREAMS),
        description="transactional (default) or broadcast: broadcast messages carry "
        "one-click unsubscribe headers (RFC 8058) and Precedence: bulk",
    )
    ignore_suppressions = IgnoredReasons(
        missing=colander.drop,
        description='["manual"] sends to addresses this client suppressed by hand; '
        "unsubscribes, bounces and complaints are never ignored",
    )

    @staticmethod
    def schema_type():
        """Unknown fields are an error, not silently dropped."""
        return colander.Mapping(unknown="raise")


# What ``api.idempotency.parse_key`` accepts, for the descriptions: an RFC 8941 string of 1
# to 255 characters (printable ASCII; ``\"`` and ``\\`` escaped), or a bare value of 1 to
# 255 visible ASCII characters but ``"`` and ``\``.
IDEMPOTENCY_KEY_PATTERN = (
    '^(?:"(?:[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]|\\\\["\\\\]){1,255}"'
    "|[\\x21\\x23-\\x5b\\x5d-\\x7e]{1,255})$"
)


class IdempotencyKeyHeader(colander.MappingSchema):
    """The request headers of ``POST /email`` beyond authentication (``api/idempotency.py``)."""

    idempotency_key = colander.SchemaNode(
        colander.String(),
        name="Idempotency-Key",
        missing=colander.drop,
        validator=colander.Regex(IDEMPOTENCY_KEY_PATTERN),
        description=(
            'A key of your choice, "quoted" (an RFC 8941 string) or bare, 1 to 255 printable '
            "ASCII characters: the same key and body again within "
            "emailsvc.idempotency_ttl_seconds replays the first 202 (Idempotent-Replayed: "
            "true) and makes no new job"
        ),
    )


class SendEmailRequest(colander.MappingSchema):
    body = SendEmailBody(validator=_job_rules)
    # Read by api/idempotency.py, not by the body's validator; here for the descriptions.
    headers = IdempotencyKeyHeader(missing=colander.drop)


class RenderEmailBody(SendEmailBody):
    """The JSON body of ``POST /email/render``: a job, and which recipient to render."""

    recipient = colander.SchemaNode(
        StrictInt(),
        missing=0,
        validator=colander.Range(min=0),
        description="The index of the recipient whose message to render (default 0)",
    )


class RenderEmailRequest(colander.MappingSchema):
    body = RenderEmailBody(validator=_job_rules)


class RenderedResponse(colander.MappingSchema):
    """The message a recipient would get: the whole MIME text and its parts."""

    mime = colander.SchemaNode(colander.String(), description="The message as sent (RFC 5322)")
    subject = colander.SchemaNode(colander.String())
    text = colander.SchemaNode(colander.String())
    html = colander.SchemaNode(colander.String(), missing=None)


class Rendered(colander.MappingSchema):
    body = RenderedResponse()


class TaskPath(colander.MappingSchema):
    task_id = colander.SchemaNode(colander.String())


class EmailStatusRequest(colander.MappingSchema):
    path = TaskPath()


class AcceptedResponse(colander.MappingSchema):
    """The body of a 202: the new job and where to follow it."""

    id = colander.SchemaNode(colander.String())
    status = colander.SchemaNode(colander.String())
    total = colander.SchemaNode(colander.Int())
    suppressed = colander.SchemaNode(
        colander.Int(), description="Recipients not to be sent to: their addresses are suppressed"
    )
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
    suppressed = colander.SchemaNode(
        colander.Int(), description="Failed recipients that were suppressed (a part of failed)"
    )
    bounced = colander.SchemaNode(
        colander.Int(),
        description="Sent recipients whose message bounced later (a part of sent)",
    )
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


class RateLimitHeaders(colander.MappingSchema):
    limit = colander.SchemaNode(
        colander.Int(), name="RateLimit-Limit", description="The client's requests per minute"
    )
    remaining = colander.SchemaNode(
        colander.Int(), name="RateLimit-Remaining", description="Requests left in this minute"
    )
    reset = colander.SchemaNode(
        colander.Int(), name="RateLimit-Reset", description="Seconds until the minute ends"
    )


class AcceptedHeaders(LocationHeader, RateLimitHeaders):
    replayed = colander.SchemaNode(
        colander.String(),
        name="Idempotent-Replayed",
        description='"true" when this is the first answer to the same Idempotency-Key again',
    )


class LimitedHeaders(RetryAfterHeader, RateLimitHeaders):
    pass


class Accepted(colander.MappingSchema):
    body = AcceptedResponse()
    headers = AcceptedHeaders()


class Limited(colander.MappingSchema):
    body = ErrorResponse()
    headers = LimitedHeaders()


class Status(colander.MappingSchema):
    body = EmailStatusResponse()


class Error(colander.MappingSchema):
    body = ErrorResponse()


class Unavailable(colander.MappingSchema):
    body = ErrorResponse()
    headers = RetryAfterHeader()


# --- the suppression list ---

MAX_SUPPRESSION_PAGE = 500


class SuppressionPath(colander.MappingSchema):
    email = colander.SchemaNode(
        EmailAddress(),
        description="The address (compared case-insensitively: the list keeps it in lower case)",
    )


class SuppressionRequest(colander.MappingSchema):
    path = SuppressionPath()


class QueryInt(colander.Int):
    """A whole number from a query string, where an empty value is an error, not a default."""

    def deserialize(self, node, cstruct):
        if cstruct == "":
            raise colander.Invalid(node, "Must be a whole number")
        return super().deserialize(node, cstruct)


class SuppressionQuery(colander.MappingSchema):
    reason = colander.SchemaNode(
        # An empty reason is refused, not taken for a missing one.
        StrictString(allow_empty=True),
        missing=colander.drop,
        validator=colander.OneOf(SUPPRESSION_REASONS),
        description="Only the entries of this reason",
    )
    cursor = colander.SchemaNode(
        StrictString(),
        missing=colander.drop,
        validator=colander.All(colander.Length(max=400), single_line),
        description="The cursor of the previous page; the list goes on after it",
    )
    limit = colander.SchemaNode(
        QueryInt(),
        missing=50,
        validator=colander.Range(min=1, max=MAX_SUPPRESSION_PAGE),
        description=f"Entries per page, 1 to {MAX_SUPPRESSION_PAGE} (default 50)",
    )


class SuppressionListRequest(colander.MappingSchema):
    querystring = SuppressionQuery()


class SuppressionResponse(colander.MappingSchema):
    """One suppressed address: why, since when, and the job that caused it (if one did)."""

    email = colander.SchemaNode(colander.String())
    reason = colander.SchemaNode(colander.String(), validator=colander.OneOf(SUPPRESSION_REASONS))
    created_at = colander.SchemaNode(colander.String())
    job_id = colander.SchemaNode(colander.String(), missing=None)


class SuppressionEntries(colander.SequenceSchema):
    suppression = SuppressionResponse()


class SuppressionPageResponse(colander.MappingSchema):
    """A page of the client's suppression list, in address order."""

    suppressions = SuppressionEntries()
    cursor = colander.SchemaNode(
        colander.String(),
        missing=None,
        description="Pass it as ?cursor= for the next page; null on the last page",
    )


class SuppressionDocument(colander.MappingSchema):
    body = SuppressionResponse()


class SuppressionPage(colander.MappingSchema):
    body = SuppressionPageResponse()
