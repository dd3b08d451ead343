"""DKIM signing (RFC 6376) of the final bytes of each message, with dkimpy.

``emailsvc.dkim.keys`` names, per sender domain, a selector and where its private key is
(a file, or an environment variable). ``DKIMSigner.from_entries`` reads and parses every
key once, when the process is assembled: a key that cannot be read or parsed stops
start-up with a message naming its domain. A worker then signs each message whose From
domain has a key, just before it is sent: ``relaxed/relaxed``, ``rsa-sha256`` or
``ed25519-sha256`` (RFC 8463) as the key is, over the headers of ``SIGNED_HEADERS`` the
message carries.

The signature covers the bytes the relay receives: an ``EmailMessage`` is flattened here
exactly as the transports flatten it (its own ``policy.SMTP``, CRLF), and the signed bytes
are what is sent.
"""

import base64
import binascii
import os
from dataclasses import dataclass
from email.generator import BytesGenerator
from io import BytesIO

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from ..checks import CheckFailed

#: The headers a signature covers when the message has them, in this order (``h=``).
SIGNED_HEADERS = (
    b"from",
    b"to",
    b"cc",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"reply-to",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)
#: RFC 8301: verifiers refuse RSA keys under 1024 bits; 2048 is what keys are made with.
MIN_RSA_BITS = 1024
RSA_BITS = 2048
_CANONICALIZE = (b"relaxed", b"relaxed")
_ED25519_SEED_BYTES = 32


class DKIMKeyError(ValueError):
    """A configured DKIM key cannot be read or used; the message names its domain."""


class SigningError(ValueError):
    """dkimpy could not sign a message (a malformed header, say): that message fails."""


@dataclass(frozen=True)
class SigningKey:
    """One domain's key, parsed: what dkimpy signs with, and what DNS must publish."""

    domain: str
    selector: str
    #: ``b"rsa-sha256"`` or ``b"ed25519-sha256"``.
    algorithm: bytes
    #: The private key in the form ``dkim.sign`` takes (PKCS#1 PEM, or an Ed25519 seed in
    #: base64), kept in memory: no file is read per message.
    private: bytes
    #: The ``p=`` of the DNS record: the public key in base64.
    public: str
    #: The file it was read from ("" for a key from an environment variable).
    path: str = ""

    def sign(self, data):
        """``data`` (a whole message, CRLF line ends) with its DKIM-Signature in front."""
        try:
            signature = dkim.sign(
                data,
                self.selector.encode("ascii"),
                self.domain.encode("ascii"),
                self.private,
                canonicalize=_CANONICALIZE,
                signature_algorithm=self.algorithm,
                include_headers=present_headers(data),
            )
        except dkim.DKIMException as exc:
            raise SigningError(f"DKIM signing failed: {exc}") from exc
        return signature + data

    def dns_record(self):
        """The TXT record to publish: ``(name, value)``."""
        kind = "ed25519" if self.algorithm == b"ed25519-sha256" else "rsa"
        return f"{self.selector}._domainkey.{self.domain}", f"v=DKIM1; k={kind}; p={self.public}"


def present_headers(data):
    """The names of ``SIGNED_HEADERS`` that ``data``'s header block carries, in that order."""
    head = data.split(b"\r\n\r\n", 1)[0]
    names = {
        line.split(b":", 1)[0].strip().lower()
        for line in head.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t")
    }
    return [name for name in SIGNED_HEADERS if name in names]


def parse_private_key(data, domain="", selector="", path=""):
    """A ``SigningKey`` from a private key: PEM (PKCS#1 or PKCS#8, RSA or Ed25519), or an
    Ed25519 seed in base64 (as dkimpy's ``dknewkey`` writes it). Raises ``DKIMKeyError``."""
    key = _load_private_key(data)
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise DKIMKeyError(f"an RSA key of {key.key_size} bits is too short (RFC 8301)")
        algorithm = b"rsa-sha256"
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        algorithm = b"ed25519-sha256"
        raw = serialization.Encoding.Raw
        seed = key.private_bytes(
            raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        private = base64.b64encode(seed)
        public = key.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    else:
        raise DKIMKeyError("the key is neither RSA nor Ed25519")
    return SigningKey(
        domain, selector, algorithm, private, base64.b64encode(public).decode("ascii"), path
    )


def _load_private_key(data):
    text = data.strip()
    if b"-----BEGIN" not in text:
        try:
            seed = base64.b64decode(text, validate=True)
        except binascii.Error:
            seed = b""
        if len(seed) != _ED25519_SEED_BYTES:
            raise DKIMKeyError("not a PEM private key, nor an Ed25519 seed in base64")
        return ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    try:
        return serialization.load_pem_private_key(text, password=None)
    except TypeError:
        raise DKIMKeyError("the key is encrypted: give it without a passphrase") from None
    except ValueError as exc:
        raise DKIMKeyError(f"not a usable PEM private key ({exc})") from None


def generate_key(algorithm="rsa"):
    """A new private key as PEM (PKCS#8): RSA of ``RSA_BITS`` bits, or Ed25519."""
    if algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def flatten(msg):
    """The bytes of an ``EmailMessage`` as the transports write them (its policy, CRLF)."""
    buffer = BytesIO()
    BytesGenerator(buffer, policy=msg.policy).flatten(msg, linesep="\r\n")
    return buffer.getvalue()


def _read_key(entry, environ):
    """The bytes of ``entry``'s key, from its file or its variable."""
    if entry.variable:
        if entry.variable not in environ:
            raise DKIMKeyError(f"the variable {entry.variable} is not set")
        # A one-line env file (docker compose) writes the PEM's line breaks as "\n".
        return environ[entry.variable].replace("\\n", "\n").encode("ascii", "replace")
    try:
        with open(entry.path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise DKIMKeyError(f"cannot read {entry.path}: {exc.strerror or exc}") from None


def load_key(entry, environ=None):
    """Read and parse the key of one ``settings.DKIMKeyEntry``; raises ``DKIMKeyError``."""
    environ = os.environ if environ is None else environ
    try:
        data = _read_key(entry, environ)
        key = parse_private_key(data, entry.domain, entry.selector, entry.path)
        # One signature now: a key dkimpy cannot use fails here, not at the first message.
        key.sign(b"From: a@" + entry.domain.encode() + b"\r\n\r\n")
    except (DKIMKeyError, SigningError) as exc:
        raise DKIMKeyError(
            f"emailsvc.dkim.keys: the key of {entry.domain} (selector {entry.selector}): {exc}"
        ) from None
    return key


class DKIMSigner:
    """The keys of the sender domains, loaded once per process; signs the messages sent
    from those domains and leaves the others as they are."""

    def __init__(self, keys=()):
        self.keys = {key.domain: key for key in keys}

    @classmethod
    def from_entries(cls, entries, environ=None):
        """Read and parse every key of ``emailsvc.dkim.keys``; raises ``DKIMKeyError``."""
        return cls([load_key(entry, environ) for entry in entries])

    def key_for(self, domain):
        """The key of a From domain, or None when that domain signs nothing."""
        return self.keys.get((domain or "").lower())

    def check(self, timeout):
        """Every key read from a file can still be read and parsed (the heartbeat check)."""
        failing = []
        for key in self.keys.values():
            if not key.path:
                continue
            try:
                with open(key.path, "rb") as handle:
                    parse_private_key(handle.read())
            except (OSError, DKIMKeyError) as exc:
                reason = type(exc).__name__ if isinstance(exc, OSError) else "unusable"
                failing.append(f"{key.domain} ({key.selector}): {reason}")
        if failing:
            raise CheckFailed("cannot read the key of " + ", ".join(failing))


def signed(key, msg):
    """The bytes to send: ``msg`` (bytes or an ``EmailMessage``) signed with ``key``, or
    ``msg`` unchanged when ``key`` is None."""
    if key is None:
        return msg
    return key.sign(msg if isinstance(msg, bytes) else flatten(msg))
