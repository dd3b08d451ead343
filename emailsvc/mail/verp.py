"""VERP envelope senders: ``bounces+<token>@<bounce domain>``, one per message.

A bounce or a complaint comes back to the envelope sender of the message it is about, so
an envelope sender of each message's own says which message it was, whatever the report
quotes of it. The token is 30 bytes written in lower-case base32 (48 characters):

    job id (16 bytes) | recipient index (4 bytes, big-endian) | HMAC-SHA256 (first 10 bytes)

The MAC covers the 20 bytes before it, under a key derived from the unsubscribe tokens'
secret (``emailsvc.unsubscribe.secret``) with its own label, so a token can be neither
forged nor altered (an 80-bit tag, checked by the receiver, offline guessing impossible).
The client and the address are read from the job's record, which is kept longer than
MTAs keep retrying (RFC 5321 suggests 4-5 days; records live 7 by default).

RFC 5321 (4.5.3.1.1) limits a local part to 64 octets: ``bounces+`` and the token make
56. Base32 has no case, so an MTA that lower-cases local parts changes nothing, and no
character of it needs quoting. Minting one costs a few microseconds (docs/PERFORMANCE.md).
"""

import base64
import binascii
import hashlib
import hmac
import threading

_KEY_INFO = b"emailsvc verp token v1"
_JOB_BYTES = 16
_INDEX_BYTES = 4
_MAC_BYTES = 10
_TOKEN_BYTES = _JOB_BYTES + _INDEX_BYTES + _MAC_BYTES
#: The local part's prefix before the token.
LOCAL_PREFIX = "bounces+"
#: The token's length: 30 bytes in base32, no padding. With the prefix, 56 octets: RFC 5321
#: (4.5.3.1.1) allows 64 in a local part.
TOKEN_LENGTH = _TOKEN_BYTES * 8 // 5


class VerpTokens:
    """Mints and reads VERP tokens; ``secret`` is a callable, asked once, on first use."""

    def __init__(self, secret):
        self._secret = secret
        self._mac = None
        self._lock = threading.Lock()

    def _base(self):
        if self._mac is None:
            with self._lock:
                if self._mac is None:
                    key = hmac.new(self._secret().encode("utf-8"), _KEY_INFO, hashlib.sha256)
                    self._mac = hmac.new(key.digest(), digestmod=hashlib.sha256)
        return self._mac

    def _tag(self, payload):
        # Copying a keyed HMAC skips hashing the key's pads again for every message.
        mac = self._base().copy()
        mac.update(payload)
        return mac.digest()[:_MAC_BYTES]

    def mint(self, job_id, index):
        """The token of recipient ``index`` of job ``job_id`` (32 hex digits)."""
        payload = bytes.fromhex(job_id) + index.to_bytes(_INDEX_BYTES, "big")
        return base64.b32encode(payload + self._tag(payload)).decode("ascii").lower()

    def read(self, token):
        """``(job_id, index)`` of a token minted here, or None for any other text."""
        if not isinstance(token, str) or len(token) != TOKEN_LENGTH:
            return None
        try:
            data = base64.b32decode(token.upper())
        except (binascii.Error, ValueError):
            return None
        payload, tag = data[:-_MAC_BYTES], data[-_MAC_BYTES:]
        if len(payload) != _JOB_BYTES + _INDEX_BYTES or not hmac.compare_digest(
            tag, self._tag(payload)
        ):
            return None
        return payload[:_JOB_BYTES].hex(), int.from_bytes(payload[_JOB_BYTES:], "big")


class VerpAddresses:
    """The envelope senders of a deployment: VERP under ``domain``."""

    def __init__(self, tokens, domain):
        self.tokens = tokens
        self.domain = domain.lower()

    def address(self, job_id, index):
        """The envelope sender of recipient ``index``'s message in job ``job_id``."""
        return f"{LOCAL_PREFIX}{self.tokens.mint(job_id, index)}@{self.domain}"

    def envelope_sender(self, sender, job_id, index):
        """The envelope sender of a message from ``sender`` (its From address).

        A non-ASCII sender keeps its own address: its From header can only be written
        with SMTPUTF8, which ``smtplib`` asks for only when the envelope is not ASCII.
        """
        return self.address(job_id, index) if sender.isascii() else sender

    def read(self, address):
        """``(job_id, index)`` of a VERP address of this domain, or None for any other."""
        local, at, domain = str(address).rpartition("@")
        if not at or domain.lower() != self.domain:
            return None
        if local[: len(LOCAL_PREFIX)].lower() != LOCAL_PREFIX:
            return None
        return self.tokens.read(local[len(LOCAL_PREFIX) :].lower())

    def accepts(self, address):
        """Whether ``address`` has the shape of one of ours (its token not yet checked)."""
        local, at, domain = str(address).rpartition("@")
        ours = bool(at) and domain.lower() == self.domain
        return ours and local.lower().startswith(LOCAL_PREFIX)
