"""API keys: ``Authorization: Bearer <key>`` checked against SHA-256 hashes from settings.

The settings hold ``client:sha256hex`` entries, never keys, so a leaked ini file or
environment dump does not leak a usable key. A client may have several entries at once,
which is how keys are rotated (see docs/SECURITY.md).
"""

import hashlib
import hmac

from pyramid.security import Allowed, Denied

# The client of every request when API keys are not required.
ANONYMOUS = "anonymous"
# The permission of the /email services; every other view is public.
SEND_PERMISSION = "email"
REALM = "emailsvc"


def hash_key(key):
    """The SHA-256 hex digest of an API key, as written in ``emailsvc.api_keys``."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyRing:
    """The configured key hashes; finds the client of a presented key in constant time.

    ``entries`` are the ``(client, sha256hex)`` pairs of ``emailsvc.api_keys``.
    """

    def __init__(self, entries):
        self.entries = list(entries)

    @property
    def clients(self):
        """The configured client names, sorted."""
        return sorted({client for client, _ in self.entries})

    def client_for(self, key):
        """Return the client whose key this is, or None.

        Every entry is compared, with ``hmac.compare_digest`` over the hashes, so the time
        taken says nothing about how close a guess was nor which entry matched.
        """
        if not key:
            return None
        presented = hash_key(key)
        found = None
        for client, digest in self.entries:
            if hmac.compare_digest(presented, digest) and found is None:
                found = client
        return found


def bearer_token(request):
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class APIKeySecurityPolicy:
    """Pyramid security policy: the identity is the client named by the request's API key.

    With ``emailsvc.require_api_key`` off every request is the client ``anonymous`` and
    every permission is granted.
    """

    def __init__(self, required, keyring):
        self.required = required
        self.keyring = keyring

    def identity(self, request):
        """The client name, or None when a key is required and none valid was given."""
        if not self.required:
            return ANONYMOUS
        return self.keyring.client_for(bearer_token(request))

    def authenticated_userid(self, request):
        """The client name (see ``identity``)."""
        return request.identity

    def permits(self, request, context, permission):
        """Grant the /email permission to any authenticated client."""
        if request.identity is not None:
            return Allowed("a valid API key was presented")
        return Denied("no valid API key")

    def remember(self, request, userid, **kw):
        """Keys are configured, not issued: nothing to remember."""
        return []

    def forget(self, request, **kw):
        """The challenge a client without a valid key gets (RFC 6750)."""
        challenge = f'Bearer realm="{REALM}"'
        if bearer_token(request) is not None:
            challenge += ', error="invalid_token"'
        return [("WWW-Authenticate", challenge)]
