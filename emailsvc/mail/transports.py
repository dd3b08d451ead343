"""Mail transports behind one interface: ``smtp`` (a relay) and ``outbox`` (.eml files).

A transport opens a session for one chunk of recipients; the session's ``send`` delivers
one message (to a recipient, then its cc and bcc addresses) and raises ``DeliveryError``
for that recipient, or ``ConnectionLost`` when the session itself is gone (the rest of
the chunk must then be retried). A transport's ``check(timeout)`` is its
``/__heartbeat__`` check: it connects the way delivery does.
"""

import os
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

    def send(self, msg, envelope_from, recipients):
        # The first address is the recipient whose outcome this is; its cc and bcc follow,
        # and a refusal of one of them alone does not fail the recipient.
        if isinstance(recipients, str):
            recipients = [recipients]
        recipient = recipients[0]
        try:
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

    def send(self, msg, envelope_from, recipients):
        """Write ``msg`` atomically (named after its Message-ID): no reader sees half a file."""
        name = msg["Message-ID"].strip("<>").replace("/", "_") + ".eml"
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(msg.as_bytes())
        os.replace(tmp, os.path.join(self.directory, name))


TRANSPORTS = {"smtp": SMTPTransport, "outbox": OutboxTransport}


def transport_from_settings(settings):
    """Return the transport named by ``emailsvc.mail.transport`` (checked by the settings)."""
    return TRANSPORTS[settings["emailsvc.mail.transport"]](settings)
