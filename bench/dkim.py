"""The cost per message of DKIM signing, rsa-2048 and ed25519, in one process.

    .venv/bin/python -m bench.dkim [--repeat N] [--number N]

Each message is built as a worker builds it (``Composer.message``: the plain-text bytes of
``mail.plaintext``, or an ``EmailMessage`` with HTML and a 20 KB attachment), then signed
as a worker signs it (``mail.dkim.signed``). Printed: the best of ``--repeat`` timings of
``--number`` messages, in microseconds per message, for building alone and for building
and signing, and the part of a signature that is dkimpy decoding the in-memory key again
(its ``sign`` takes the key as text). Nothing is sent; no Redis, no network.
"""

import argparse
import base64
import os
import platform
import timeit
from datetime import UTC, datetime

from dkim.crypto import parse_pem_private_key

from emailsvc.mail.compose import Composer, dump_content, load_content
from emailsvc.mail.dkim import generate_key, parse_private_key, signed
from emailsvc.mail.messages import sender_address
from emailsvc.mail.templates import Templates

SENDER = sender_address("noreply@example.com", "Shop")
RECIPIENT = {"email": "ana@example.org", "name": "Ana", "vars": {}}
TEXT = "Hello,\n\nyour order has shipped and will arrive on Monday.\n\nThe shop\n" * 4
BODIES = {
    "plain text (bytes)": {"content": TEXT},
    "HTML + 20 KB attachment": {
        "content": TEXT,
        "html": "<p>" + TEXT.replace("\n", "<br>") + "</p>",
        "attachments": [
            {
                "filename": "invoice.pdf",
                "content_type": "application/pdf",
                "content": base64.b64encode(os.urandom(20_000)).decode(),
            }
        ],
    },
}


def composer(body):
    """The Composer of a one-chunk job of ``body``, as a worker makes it."""
    job = {"subject": "Your order", "content": body["content"], "template": "default"}
    content = load_content(dump_content(body))
    return Composer(Templates(), job, content, SENDER, datetime.now(UTC))


def best_microseconds(statement, repeat, number):
    """The best of ``repeat`` runs of ``number`` calls, in µs per call."""
    return min(timeit.repeat(statement, repeat=repeat, number=number)) / number * 1e6


def machine():
    """CPUs, model, Python and the 1-minute load, for the figures' heading."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs, {model}, Python {platform.python_version()}, "
        f"load {os.getloadavg()[0]:.1f}"
    )


def main(argv=None):
    """Print the build and build-and-sign cost per message for each key type and body."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--number", type=int, default=500)
    args = parser.parse_args(argv)
    keys = {
        name: parse_private_key(generate_key(name), "example.com", "bench")
        for name in ("rsa", "ed25519")
    }
    print(f"machine: {machine()}")
    print(f"best of {args.repeat} x {args.number} messages, µs per message")
    for label, body in BODIES.items():
        made = composer(body)
        size = len(signed(keys["rsa"], made.message(RECIPIENT, "<1@example.com>")))
        built = best_microseconds(
            lambda made=made: made.message(RECIPIENT, "<1@example.com>"), args.repeat, args.number
        )
        print(f"{label} ({size:,} bytes): built {built:,.0f}")
        for name, key in keys.items():
            total = best_microseconds(
                lambda made=made, key=key: signed(key, made.message(RECIPIENT, "<1@example.com>")),
                args.repeat,
                args.number,
            )
            print(f"  {name}: built and signed {total:,.0f}, signing {total - built:,.0f}")
    parse = best_microseconds(
        lambda: parse_pem_private_key(keys["rsa"].private), args.repeat, args.number
    )
    print(f"rsa: dkimpy's decoding of the in-memory key, per signature: {parse:,.0f}")
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
