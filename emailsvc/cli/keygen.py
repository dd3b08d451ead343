"""Console script ``emailsvc-keygen CLIENT``: a new API key and the entry that configures it."""

import secrets
import sys

from ..api.auth import hash_key
from ..settings import CLIENT_NAME

KEY_BYTES = 32


def new_key():
    """A fresh random API key (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(KEY_BYTES)


def main(argv=None):
    """Print a new key once, and the ``client:sha256hex`` entry for ``emailsvc.api_keys``.

    With ``--env``, standard output is only the ``EMAILSVC_API_KEYS=...`` line of an env
    file (``emailsvc-keygen --env trial > docker/.env``) and the key goes to standard error.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    env_line = "--env" in args
    if env_line:
        args.remove("--env")
    if len(args) != 1 or not CLIENT_NAME.match(args[0]):
        print(
            "usage: emailsvc-keygen [--env] CLIENT  (lower-case letters, digits, '_' or '-')",
            file=sys.stderr,
        )
        return 2
    client = args[0]
    key = new_key()
    entry = f"{client}:{hash_key(key)}"
    if env_line:
        print(
            f"API key for {client} (shown once; give it to the client, do not store it):",
            file=sys.stderr,
        )
        print(f"  {key}", file=sys.stderr)
        print(f"EMAILSVC_API_KEYS={entry}")
        return 0
    print(f"API key for {client} (shown once; give it to the client, do not store it):")
    print(f"  {key}")
    print("Add this entry to emailsvc.api_keys (EMAILSVC_API_KEYS), space-separated:")
    print(f"  {entry}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
