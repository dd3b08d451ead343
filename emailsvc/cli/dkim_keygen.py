"""Console script ``emailsvc-dkim-keygen DOMAIN SELECTOR``: a DKIM key and its DNS record.

Writes the private key (PEM, mode 0600) and prints the TXT record to publish on standard
output; what to add to ``emailsvc.dkim.keys`` goes to standard error.
"""

import argparse
import os
import sys

from ..mail.dkim import generate_key, parse_private_key
from ..settings import SettingsError, dkim_key_entries

# A TXT record is made of character-strings of at most 255 bytes each (RFC 1035, 3.3);
# a 2048-bit RSA key needs two. Verifiers join them (RFC 6376, 3.6.2.2).
TXT_STRING_BYTES = 255


def zone_line(name, value):
    """The record as a zone-file line: ``NAME IN TXT "..." "..."``."""
    strings = [value[i : i + TXT_STRING_BYTES] for i in range(0, len(value), TXT_STRING_BYTES)]
    return f"{name} IN TXT " + " ".join(f'"{string}"' for string in strings)


def write_private_key(path, pem):
    """Write ``pem`` to a new file readable by its owner only; an existing file is kept."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        # The mode given to open() is reduced by the umask, never widened: make it exact.
        os.fchmod(handle.fileno(), 0o600)
        handle.write(pem)


def main(argv=None):
    """Make a key for DOMAIN and SELECTOR, write it, print its TXT record."""
    parser = argparse.ArgumentParser(
        prog="emailsvc-dkim-keygen",
        description="Write a new DKIM private key and print the DNS TXT record to publish.",
    )
    parser.add_argument("domain", help="the sender domain (the From address's), e.g. example.com")
    parser.add_argument("selector", help="the selector, e.g. s2026 (a DNS label)")
    parser.add_argument(
        "--ed25519",
        action="store_true",
        help="an Ed25519 key (ed25519-sha256, RFC 8463) instead of RSA 2048",
    )
    parser.add_argument(
        "-o",
        "--output",
        help="the private key's file (default: DOMAIN.SELECTOR.pem here); never overwritten",
    )
    args = parser.parse_args(argv)
    path = os.path.abspath(args.output or f"{args.domain}.{args.selector}.pem")
    try:
        # The entry the operator will configure, checked as the settings will check it.
        [entry] = dkim_key_entries(f"{args.domain}:{args.selector}:{path}")
    except (SettingsError, ValueError):
        parser.error("DOMAIN and SELECTOR must be ASCII DNS names (letters, digits, '-', '.')")
    pem = generate_key("ed25519" if args.ed25519 else "rsa")
    try:
        write_private_key(path, pem)
    except FileExistsError:
        print(f"emailsvc-dkim-keygen: {path} exists; not overwritten", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"emailsvc-dkim-keygen: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return 1
    key = parse_private_key(pem, entry.domain, entry.selector)
    print(zone_line(*key.dns_record()))
    print(
        f"Private key written to {path} (mode 0600). Publish the record above, then add",
        file=sys.stderr,
    )
    print(f"this entry to emailsvc.dkim.keys (EMAILSVC_DKIM_KEYS):\n  {entry}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
