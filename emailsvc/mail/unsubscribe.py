"""One-click unsubscribe (RFC 8058): the links' tokens and the headers of broadcast messages.

A token names a client, an address and a job, and shows none of them: it is that triple
encrypted and authenticated with AES-SIV (RFC 5297) under a key derived with HMAC-SHA512
from ``emailsvc.unsubscribe.secret``. Any change to a token fails its authentication, so
a forged or altered token reads as nothing. The same triple always gives the same token
(SIV is deterministic), nothing is stored per message, and a token stays valid as long
as the secret does: long after its job's record has expired.

The List-Unsubscribe header is written by ``ListUnsubscribe`` itself: the email package
would fold a long URL into RFC 2047 encoded words, which no mail reader decodes in this
header; here each URI stays whole on its line (RFC 5322 allows 998 characters).
"""

import base64
import binascii
import hashlib
import hmac
import threading

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

_KEY_INFO = b"emailsvc unsubscribe token v1"
_JOB_BYTES = 16
# The headers of one-click unsubscribe; a job that sets one of them owns both.
LIST_UNSUBSCRIBE = "List-Unsubscribe"
LIST_UNSUBSCRIBE_POST = "List-Unsubscribe-Post"
ONE_CLICK = "List-Unsubscribe=One-Click"
OWNED_BY_JOB = frozenset({"list-unsubscribe", "list-unsubscribe-post"})
# What a preview (POST /email/render) names as its job.
PREVIEW_JOB = "0" * 32
_MAX_LINE = 78


class UnsubscribeTokens:
    """Mints and reads unsubscribe tokens; ``secret`` is a callable, asked once, on first use.

    Asking lazily lets the development default keep its generated secret in Redis without
    the process needing Redis to start.
    """

    def __init__(self, secret):
        self._secret = secret
        self._cipher = None
        self._lock = threading.Lock()

    def _aead(self):
        with self._lock:
            if self._cipher is None:
                secret = self._secret().encode("utf-8")
                key = hmac.new(secret, _KEY_INFO, hashlib.sha512).digest()
                self._cipher = AESSIV(key)
            return self._cipher

    def mint(self, client, address, job_id):
        """The token of ``address`` (lower-cased) in ``client``'s job ``job_id`` (hex)."""
        payload = bytes.fromhex(job_id) + f"{client}\n{address.lower()}".encode()
        sealed = self._aead().encrypt(payload, None)
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def read(self, token):
        """``(client, address, job_id)`` of a token minted here, or None for any other."""
        if not isinstance(token, str) or not token.isascii() or len(token) > 2048:
            return None
        try:
            sealed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            payload = self._aead().decrypt(sealed, None)
        except (binascii.Error, ValueError, InvalidTag):
            return None
        client, _, address = payload[_JOB_BYTES:].decode("utf-8").partition("\n")
        return client, address, payload[:_JOB_BYTES].hex()


class ListUnsubscribe(str):
    """A List-Unsubscribe header as the email package stores it, folded only between URIs.

    ``EmailMessage`` keeps an object with a ``name`` as the header itself and writes it
    with its ``fold``; ``fold`` is what ``mail.plaintext`` writes too.
    """

    def __new__(cls, uris):
        value = super().__new__(cls, ", ".join(f"<{uri}>" for uri in uris))
        value.uris = tuple(uris)
        return value

    name = LIST_UNSUBSCRIBE
    defects = ()

    def fold(self, *, policy):
        """The header's line(s), each URI whole, ended with ``policy.linesep``."""
        line = f"{self.name}: {self}"
        if len(line) <= _MAX_LINE:
            return line + policy.linesep
        parts = [f"<{uri}>" for uri in self.uris]
        return f"{self.name}: " + f",{policy.linesep} ".join(parts) + policy.linesep


class UnsubscribeLinks:
    """The unsubscribe links of one broadcast job's messages, each recipient's its own."""

    def __init__(self, tokens, client, job_id, base_url, mailbox=""):
        self.tokens = tokens
        self.client = client
        self.job_id = job_id
        self.base_url = base_url.rstrip("/")
        self.mailbox = mailbox
        self._tokens = {}

    def token(self, address):
        """The recipient's token (minted once per chunk and address)."""
        if address not in self._tokens:
            self._tokens[address] = self.tokens.mint(self.client, address, self.job_id)
        return self._tokens[address]

    def url(self, address):
        """The page a recipient unsubscribes at (GET shows it, POST unsubscribes)."""
        return f"{self.base_url}/unsubscribe/{self.token(address)}"

    def header(self, address):
        """The recipient's List-Unsubscribe header: the URL, then the mailbox when set."""
        uris = [self.url(address)]
        if self.mailbox:
            uris.append(f"mailto:{self.mailbox}?subject=unsubscribe-{self.token(address)}")
        return ListUnsubscribe(uris)
