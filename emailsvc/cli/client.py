"""``emailsvc-client``: send email and follow jobs from the command line, through SPORE.

The client knows no URL of the API: it reads the server's ``GET /spore`` with britney (a
generic SPORE client) and calls the methods ``send_email``, ``render_email`` and
``get_email_status`` by name.

Exit status: 0 when the job was accepted (or, with ``--wait``, ended ``sent``); 1 when it
ended ``partially_failed``, ``failed`` or ``cancelled``, or the service could not be reached
or answered an error of its own; 2 for usage errors and requests the service refused (its
messages are printed).
"""

import argparse
import base64
import csv
import json
import mimetypes
import os
import re
import sys
import time

FINAL_STATUSES = {"sent", "partially_failed", "failed", "cancelled"}
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_URL = "http://127.0.0.1:6543"


class ClientError(Exception):
    """The service could not be used; ``exit_status`` says how the command ends."""

    def __init__(self, message, exit_status=EXIT_FAILED):
        super().__init__(message)
        self.exit_status = exit_status


def connect(url, api_key=None):
    """A britney client built from ``<url>/spore``, speaking JSON, sending the API key."""
    try:
        import britney
        from britney.middleware.base import Middleware, add_header
        from britney.middleware.format import Json
    except ImportError:
        raise ClientError(
            "emailsvc-client needs britney: pip install 'emailsvc[client]'"
        ) from None

    class Bearer(Middleware):
        """Send ``Authorization: Bearer <key>`` with every request."""

        def __init__(self, key):
            self.key = key

        def process_request(self, environ):
            add_header(environ, "Authorization", f"Bearer {self.key}")

    from britney.errors import SporeClientBuildError

    try:
        client = britney.spyre(url.rstrip("/") + "/spore")
    # britney reads the description with urllib: its errors are OSErrors (URLError).
    except (OSError, ValueError, SporeClientBuildError) as exc:
        raise ClientError(f"cannot read the SPORE description at {url}/spore: {exc}") from None
    client.enable(Json)
    if api_key:
        client.enable(Bearer, key=api_key)
    return client


def send_on_posts(client, name, value):
    """Have ``client`` send the header ``name: value`` with its POST requests from now on."""
    from britney.middleware.base import Middleware, add_header

    class Header(Middleware):
        def process_request(self, environ):
            add_header(environ, name, value)

    client.enable_if(lambda environ: environ["REQUEST_METHOD"] == "POST", Header)


def sf_string(text):
    """``text`` as a Structured Field string (RFC 8941): quoted, ``"`` and ``\\`` escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def call(client, method_name, **kwargs):
    """Call a SPORE method; return ``(status_code, document)`` whatever the status."""
    import britney
    import requests

    try:
        response = getattr(client, method_name)(**kwargs)
        return response.status_code, response.data
    except britney.HTTPError as exc:
        # A status the description does not list (401 from a proxy, 502, ...).
        response = exc.response
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, {"status": "error", "errors": [], "body": response.text}
    except requests.RequestException as exc:
        raise ClientError(f"cannot reach the service: {exc}") from None
    except ValueError as exc:
        # The answer claimed to be JSON and was not (an HTML error page from a proxy).
        raise ClientError(f"the service answered something that is not JSON: {exc}") from None


def error_messages(document):
    """The ``location name: description`` lines of a Cornice error document."""
    lines = []
    for error in (document or {}).get("errors") or []:
        where = " ".join(p for p in (error.get("location"), error.get("name")) if p)
        lines.append(f"{where}: {error.get('description')}" if where else error.get("description"))
    return lines


def fail_with(status_code, document):
    """Raise the ClientError an error answer deserves: 4xx is the caller's, 5xx the service's."""
    messages = "\n".join(f"  {line}" for line in error_messages(document)) or f"  {document}"
    exit_status = EXIT_USAGE if 400 <= status_code < 500 else EXIT_FAILED
    raise ClientError(f"the service answered {status_code}:\n{messages}", exit_status)


def progress_line(doc, width=30):
    """A one-line bar: ``[####----] 3/8 sent, 1 failed, status sending``."""
    total = doc.get("total") or 0
    done = doc.get("sent", 0) + doc.get("failed", 0)
    filled = width * done // total if total else width
    return (
        f"[{'#' * filled}{'-' * (width - filled)}] {doc.get('sent', 0)}/{total} sent, "
        f"{doc.get('failed', 0)} failed, status {doc.get('status')}"
    )


def poll(client, job_id):
    """The job's status document; a refusal ends the command."""
    status_code, doc = call(client, "get_email_status", task_id=job_id)
    if status_code != 200:
        fail_with(status_code, doc)
    return doc


def wait_for_job(client, job_id, interval, stream):
    """Poll the job until its status is final, showing its progress on ``stream``.

    On a terminal, a rich progress bar redrawn in place; elsewhere (a log, a pipe), one
    plain line per change.
    """
    if stream.isatty():
        return _wait_with_progress_bar(client, job_id, interval, stream)
    last = None
    while True:
        doc = poll(client, job_id)
        line = progress_line(doc)
        if line != last:
            stream.write(line + "\n")
            stream.flush()
        last = line
        if doc.get("status") in FINAL_STATUSES:
            return doc
        time.sleep(interval)


def _wait_with_progress_bar(client, job_id, interval, stream):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(file=stream)
    columns = (
        TextColumn("[bold]{task.fields[status]:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("sent {task.fields[sent]}, failed {task.fields[failed]}"),
    )
    with Progress(*columns, console=console, auto_refresh=False) as progress:
        bar = progress.add_task("job", total=None, status="queued", sent=0, failed=0)
        while True:
            doc = poll(client, job_id)
            sent, failed = doc.get("sent", 0), doc.get("failed", 0)
            progress.update(
                bar,
                total=doc.get("total") or None,
                completed=sent + failed,
                status=doc.get("status"),
                sent=sent,
                failed=failed,
            )
            progress.refresh()
            if doc.get("status") in FINAL_STATUSES:
                return doc
            time.sleep(interval)


def read_content(args):
    """The message text: ``--content TEXT``, or ``--content -`` / ``--content-file FILE``
    (``-`` is standard input); None when none is given."""
    if args.content == "-" or args.content_file == "-":
        return sys.stdin.read()
    if args.content is not None:
        return args.content
    if args.content_file is None:
        return None
    return read_text(args.content_file)


def read_text(path):
    """A UTF-8 file's text; an unreadable file is a usage error."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientError(f"cannot read {path}: {exc}", EXIT_USAGE) from None


def attachment(path):
    """``--attach FILE``: the file's name, its type guessed from it, its bytes in base64."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc}", EXIT_USAGE) from None
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return {
        "filename": os.path.basename(path),
        "content_type": content_type,
        "content": base64.b64encode(data).decode("ascii"),
    }


def header(text):
    """``--header NAME=VALUE``: one custom header."""
    name, separator, value = text.partition("=")
    if not separator or not name.strip():
        raise ClientError(f"--header {text!r}: write it NAME=VALUE", EXIT_USAGE)
    return name.strip(), value.strip()


_NAMED_ADDRESS = re.compile(r"^\s*(.*?)\s*<([^<>]+)>\s*$")


def recipient(text):
    """``--to`` value: ``addr@example.org`` or ``Name <addr@example.org>``."""
    match = _NAMED_ADDRESS.match(text)
    if not match:
        return text.strip()
    name, address = match[1].strip(), match[2].strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1]
    return {"email": address, "name": name} if name else address


def read_recipients_csv(path):
    """Recipients from a CSV file with a header row: ``email``, optional ``name``, and any
    other column as a template variable of that row's recipient."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ClientError(f"cannot read {path}: {exc}", EXIT_USAGE) from None
    if rows and "email" not in rows[0]:
        raise ClientError(f"{path}: the first row must name an 'email' column", EXIT_USAGE)
    result = []
    for number, row in enumerate(rows, start=2):
        if None in row:
            raise ClientError(f"{path}, row {number}: more fields than columns", EXIT_USAGE)
        entry = {"email": (row.pop("email") or "").strip()}
        name = (row.pop("name", "") or "").strip()
        if name:
            entry["name"] = name
        variables = {key: value or "" for key, value in row.items()}
        if variables:
            entry["vars"] = variables
        result.append(entry)
    return result


def job_payload(args):
    """The job the options describe: recipients (with their cc and bcc), text, HTML,
    attachments, headers."""
    recipients = [recipient(text) for text in args.to or []]
    if args.vars_csv:
        recipients += read_recipients_csv(args.vars_csv)
    copies = {"cc": [recipient(t) for t in args.cc or []]}
    copies["bcc"] = [recipient(t) for t in args.bcc or []]
    if copies["cc"] or copies["bcc"]:
        # Every recipient's message goes to the same cc and bcc.
        recipients = [
            dict(
                r if isinstance(r, dict) else {"email": r},
                **{k: v for k, v in copies.items() if v},
            )
            for r in recipients
        ]
    payload = {"recipients": recipients, "subject": args.subject}
    content = read_content(args)
    if content is not None:
        payload["content"] = content
    if args.html_file:
        payload["html"] = read_text(args.html_file)
    if "content" not in payload and "html" not in payload:
        raise ClientError("give the text (--content, --content-file), --html-file or both", 2)
    if args.attach:
        payload["attachments"] = [attachment(path) for path in args.attach]
    if args.header:
        payload["headers"] = dict(header(text) for text in args.header)
    if args.reply_to:
        payload["reply_to"] = args.reply_to
    if args.template:
        payload["template"] = args.template
    if args.sender:
        payload["from"] = args.sender
    if args.broadcast:
        payload["stream"] = "broadcast"
    return payload


def command_render(args, client):
    """``render``: print the MIME message one recipient of the job would get; sends nothing."""
    payload = dict(job_payload(args), recipient=args.recipient)
    status_code, doc = call(client, "render_email", payload=payload)
    if status_code != 200:
        fail_with(status_code, doc)
    sys.stdout.write(doc["mime"])
    return EXIT_OK


def command_send(args, client):
    """``send``: submit a job, print the answer, and with ``--wait`` follow it to the end."""
    payload = job_payload(args)
    if args.idempotency_key:
        # Running the same command again (after a timeout) makes no second job.
        send_on_posts(client, "Idempotency-Key", sf_string(args.idempotency_key))
    status_code, doc = call(client, "send_email", payload=payload)
    if status_code != 202:
        fail_with(status_code, doc)
    if not args.wait:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return EXIT_OK
    final = wait_for_job(client, doc["id"], args.interval, sys.stderr)
    print(json.dumps(final, indent=2, ensure_ascii=False))
    return EXIT_OK if final["status"] == "sent" else EXIT_FAILED


def command_status(args, client):
    """``status ID``: print the job's status document."""
    status_code, doc = call(client, "get_email_status", task_id=args.id)
    if status_code != 200:
        fail_with(status_code, doc)
    print(json.dumps(doc, indent=2, ensure_ascii=False))
    return EXIT_OK


def parser():
    """The command line: ``send``, ``render`` and ``status``, each with ``--url`` and
    ``--api-key``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=os.environ.get("EMAILSVC_URL", DEFAULT_URL),
        help=f"the service (default: $EMAILSVC_URL or {DEFAULT_URL})",
    )
    common.add_argument(
        "--api-key",
        default=os.environ.get("EMAILSVC_API_KEY"),
        help="sent as 'Authorization: Bearer <key>' (default: $EMAILSVC_API_KEY)",
    )
    top = argparse.ArgumentParser(
        prog="emailsvc-client", description="Send email through emailsvc and follow the jobs."
    )
    commands = top.add_subparsers(dest="command", required=True)

    job = argparse.ArgumentParser(add_help=False)
    _job_options(job)
    send = commands.add_parser(
        "send", parents=[common, job], help="send one message per recipient"
    )
    send.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="sent as Idempotency-Key: the same command again gets the first job's answer",
    )
    send.add_argument("--wait", action="store_true", help="follow the job until it ends")
    send.add_argument(
        "--interval", type=float, default=1.0, help="seconds between polls (default 1)"
    )
    send.set_defaults(handler=command_send)

    render = commands.add_parser(
        "render", parents=[common, job], help="print the message a recipient would get"
    )
    render.add_argument(
        "--recipient",
        type=int,
        default=0,
        metavar="INDEX",
        help="which recipient's message, counted from 0 (default 0)",
    )
    render.set_defaults(handler=command_render)

    status = commands.add_parser("status", parents=[common], help="print a job's status")
    status.add_argument("id", help="the job id")
    status.set_defaults(handler=command_status)
    return top


def _job_options(send):
    """The options that describe a job, shared by ``send`` and ``render``."""
    send.add_argument(
        "--to",
        action="append",
        help='a recipient, "addr@example.org" or "Name <addr@example.org>" (repeatable)',
    )
    send.add_argument(
        "--vars-csv",
        metavar="FILE",
        help="recipients from a CSV file: one per row, columns email, name (optional) and "
        "any others, which become that recipient's template variables",
    )
    send.add_argument(
        "--from",
        dest="sender",
        metavar="ADDRESS",
        help="the From address (in a domain your key may use; the service's default if unset)",
    )
    send.add_argument("--subject", required=True)
    content = send.add_mutually_exclusive_group()
    content.add_argument("--content", help="the message text itself ('-' for standard input)")
    content.add_argument("--content-file", help="a file with the message text ('-': stdin)")
    send.add_argument("--html-file", metavar="FILE", help="a file with the message's HTML")
    send.add_argument(
        "--attach", action="append", metavar="FILE", help="attach a file (repeatable)"
    )
    send.add_argument(
        "--cc", action="append", metavar="ADDRESS", help="a copy of every message (repeatable)"
    )
    send.add_argument(
        "--bcc",
        action="append",
        metavar="ADDRESS",
        help="a blind copy of every message, named in no header (repeatable)",
    )
    send.add_argument("--reply-to", metavar="ADDRESS", help="the Reply-To address")
    send.add_argument(
        "--header",
        action="append",
        metavar="NAME=VALUE",
        help="a custom header, e.g. X-Campaign=spring (repeatable)",
    )
    send.add_argument("--template", help="the template name (the service's default if unset)")
    send.add_argument(
        "--broadcast",
        action="store_true",
        help="a broadcast (newsletter) job: each message gets its recipient's one-click "
        "unsubscribe link",
    )


def main(argv=None):
    """Console script ``emailsvc-client``."""
    command_line = parser()
    args = command_line.parse_args(argv)
    if args.command in ("send", "render") and not (args.to or args.vars_csv):
        command_line.error("the recipients: give --to, --vars-csv or both")
    try:
        client = connect(args.url, args.api_key)
        return args.handler(args, client)
    except ClientError as exc:
        print(f"emailsvc-client: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
