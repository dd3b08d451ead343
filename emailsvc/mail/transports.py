"""Mail transports behind one interface: ``smtp`` (a relay) and ``outbox`` (.eml files).

A transport opens a session for one chunk of recipients; the session's ``send`` delivers
one message (to a recipient, then its cc and bcc addresses) and raises ``DeliveryError``
for that recipient, or ``ConnectionLost`` when the session itself is gone (the rest of
the chunk must then be retried). A transport's ``check(timeout)`` is its
``/__heartbeat__`` check: it connects the way delivery does.
"""

import os
import re
import smtplib
import ssl
import tempfile
from contextlib import contextmanager

from ..checks import CheckFailed


class DeliveryError(Exception):
    """One recipient was not delivered; ``permanent`` says whether a retry could help."""

    def __init__(self, code, message, permanent):
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.permanent = permanent


class ConnectionLost(Exception):
    """The relay could not be reached or ended the session; retry later.

    ``code`` is the relay's reply when it said why (421: service not available).
    """

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


def _decode(text):
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def _smtp_error(code, message):
    # 5xx is a permanent refusal of this recipient; anything else (4xx) may pass later.
    return DeliveryError(code, _decode(message), permanent=500 <= code < 600)


class SMTPTransport:
    """Delivers through an SMTP relay over one connection per chunk."""

    def __init__(self, settings):
        self.host = settings["emailsvc.smtp.host"]
        self.port = settings["emailsvc.smtp.port"]
        self.username = settings["emailsvc.smtp.username"]
        self.password = settings["emailsvc.smtp.password"]
        self.starttls = settings["emailsvc.smtp.starttls"]
        self.ssl = settings["emailsvc.smtp.ssl"]
        self.timeout = settings["emailsvc.smtp.timeout_seconds"]

    def _connect(self, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        if self.ssl:
            smtp = smtplib.SMTP_SSL(
                self.host, self.port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=timeout)
        try:
            if self.starttls and not self.ssl:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password)
        except BaseException:
            # Say goodbye even so: relays count connections dropped without QUIT.
            _quit(smtp)
            raise
        return smtp

    def check(self, timeout):
        """Connect as delivery does (TLS and login included), then NOOP and QUIT."""
        try:
            smtp = self._connect(timeout)
        except smtplib.SMTPResponseException as exc:
            raise CheckFailed(f"the relay answered {exc.smtp_code}") from None
        try:
            smtp.ehlo_or_helo_if_needed()
            code, _ = smtp.noop()
            if code != 250:
                raise CheckFailed(f"the relay answered {code}")
        finally:
            _quit(smtp)

    @contextmanager
    def session(self):
        """Yield a session with ``send(msg, envelope_from, recipient)`` over one connection."""
        try:
            smtp = self._connect()
        except smtplib.SMTPResponseException as exc:
            message = _decode(exc.smtp_error)
            raise ConnectionLost(f"relay refused the session: {message}", exc.smtp_code) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise ConnectionLost(f"cannot reach {self.host}:{self.port}: {exc}") from exc
        try:
            yield _SMTPSession(smtp)
        finally:
            _quit(smtp)


def _quit(smtp):
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


class _SMTPSession:
    def __init__(self, smtp):
        self.smtp = smtp

    def send(self, msg, envelope_from, recipients, msgid=None, before_data=None):
        """Send ``msg`` (an ``EmailMessage``, or its bytes) to ``recipients``.

        The first address is the recipient whose outcome this is; its cc and bcc follow,
        and a refusal of one of them alone does not fail the recipient. ``before_data``
        is called before the message is handed over (while the relay answers the
        envelope, when it offers PIPELINING); what it raises ends the session, the
        message not sent.
        """
        if isinstance(recipients, str):
            recipients = [recipients]
        recipient = recipients[0]
        try:
            if isinstance(msg, bytes):
                refused = self._sendmail(envelope_from, recipients, msg, before_data)
            else:
                if before_data is not None:
                    before_data()
                refused = self.smtp.send_message(msg, from_addr=envelope_from, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            code, message = exc.recipients.get(recipient, (550, b"recipient refused"))
            if code == 421:
                # 421 ends the session (smtplib has closed it): the rest of the chunk waits.
                raise ConnectionLost(_decode(message), code) from exc
            raise _smtp_error(code, message) from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise ConnectionLost(str(exc)) from exc
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code == 421:
                raise ConnectionLost(_decode(exc.smtp_error), 421) from exc
            # MAIL FROM or DATA refused: smtplib has reset the session, which stays usable.
            raise _smtp_error(exc.smtp_code, exc.smtp_error) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise ConnectionLost(str(exc)) from exc
        # With a single recipient a refusal raises above; this is a belt for odd relays.
        if recipient in refused:
            raise _smtp_error(*refused[recipient])

    def _sendmail(self, envelope_from, recipients, data, before_data=None):
        """``smtplib.SMTP.sendmail`` of ASCII addresses and bytes, in two round trips
        instead of three or more when the relay offers PIPELINING (RFC 2920): MAIL, the
        RCPTs and DATA go in one write, then the message; the same replies and errors."""
        smtp = self.smtp
        smtp.ehlo_or_helo_if_needed()
        if not smtp.has_extn("pipelining"):
            if before_data is not None:
                before_data()
            return smtp.sendmail(envelope_from, recipients, data)
        options = f" SIZE={len(data)}" if smtp.has_extn("size") else ""
        # Each address was validated on its own: it needs no parsing (smtplib's quoteaddr
        # parses it with parseaddr, CVE-2023-27043), only its brackets.
        commands = [f"MAIL FROM:<{envelope_from}>{options}"]
        commands += [f"RCPT TO:<{address}>" for address in recipients]
        commands.append("DATA")
        smtp.send("\r\n".join(commands) + "\r\n")
        if before_data is not None:
            try:
                before_data()
            except BaseException:
                # The relay waits for a message that must not come: drop the session
                # without a final dot (and without QUIT, which it would take as data).
                smtp.close()
                raise
        # Every reply is read, even after a refusal, so that the session stays in step.
        mail = self._reply()
        rcpts = [self._reply() for _ in recipients]
        data_reply = self._reply()
        if data_reply[0] == 354 and (mail[0] != 250 or all(r[0] not in (250, 251) for r in rcpts)):
            # A relay that took DATA with nothing to deliver: end it with an empty message.
            smtp.send(b".\r\n")
            self._reply()
        if mail[0] != 250:
            self._reset()
            raise smtplib.SMTPSenderRefused(*mail, envelope_from)
        refused = {a: r for a, r in zip(recipients, rcpts, strict=True) if r[0] not in (250, 251)}
        if len(refused) == len(recipients):
            self._reset()
            raise smtplib.SMTPRecipientsRefused(refused)
        if data_reply[0] != 354:
            self._reset()
            raise smtplib.SMTPDataError(*data_reply)
        body = _LEADING_DOT.sub(b"..", data)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        smtp.send(body + b".\r\n")
        code, message = self._reply()
        if code != 250:
            self._reset()
            raise smtplib.SMTPDataError(code, message)
        return refused

    def _reset(self):
        # As smtplib does after a refusal: the session stays usable for the next message.
        try:
            self.smtp.rset()
        except smtplib.SMTPServerDisconnected:
            pass

    def _reply(self):
        code, message = self.smtp.getreply()
        if code == 421:
            # The relay ends the session: whatever was pipelined after it has no reply.
            self.smtp.close()
            raise smtplib.SMTPResponseException(code, message)
        return code, message


# Dot-stuffing (RFC 5321, 4.5.2): a line that starts with "." gets another in front.
_LEADING_DOT = re.compile(rb"(?m)^\.")


class OutboxTransport:
    """Writes each message as a ``.eml`` file into a folder, for development."""

    def __init__(self, settings):
        self.directory = settings["emailsvc.outbox_dir"]

    def check(self, timeout):
        """The folder exists (or can be made) and a file can be written into it."""
        os.makedirs(self.directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=self.directory, prefix=".heartbeat-"):
            pass

    @contextmanager
    def session(self):
        """Yield a session whose ``send`` writes one file per message."""
        os.makedirs(self.directory, exist_ok=True)
        yield self

    def send(self, msg, envelope_from, recipients, msgid=None, before_data=None):
        """Write ``msg`` (an ``EmailMessage``, or its bytes and ``msgid``) atomically,
        named after its Message-ID: no reader sees half a file."""
        if before_data is not None:
            before_data()
        msgid = msgid or msg["Message-ID"]
        name = msgid.strip("<>").replace("/", "_") + ".eml"
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(msg if isinstance(msg, bytes) else msg.as_bytes())
        os.replace(tmp, os.path.join(self.directory, name))


TRANSPORTS = {"smtp": SMTPTransport, "outbox": OutboxTransport}


def transport_from_settings(settings):
    """Return the transport named by ``emailsvc.mail.transport`` (checked by the settings)."""
    return TRANSPORTS[settings["emailsvc.mail.transport"]](settings)
