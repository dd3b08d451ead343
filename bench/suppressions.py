"""What suppressions and unsubscribe links add to the worker's per-chunk and per-message path.

    .venv/bin/python -m bench.suppressions [--redis URL] [--repeat N] [--number N]

Per chunk: ``SuppressionStore.reasons`` over a chunk of 100 addresses (one ``HMGET``)
against a real Redis holding 10,000 suppressions of the client, under a prefix of its own
that is removed afterwards. Per message: ``Composer.message`` of a plain-text message
(the bytes of ``mail.plaintext``), transactional and broadcast (its token minted, its
List-Unsubscribe line written), each recipient another address. Printed: the best of
``--repeat`` timings, in microseconds.
"""

import argparse
import itertools
import timeit
import uuid
from datetime import UTC, datetime

import redis

from emailsvc.jobs.suppressions import SuppressionStore
from emailsvc.mail.compose import Composer, dump_content, load_content
from emailsvc.mail.messages import sender_address
from emailsvc.mail.templates import Templates
from emailsvc.mail.unsubscribe import UnsubscribeLinks, UnsubscribeTokens

from .dkim import TEXT, best_microseconds, machine

SENDER = sender_address("noreply@example.com", "Shop")
JOB_ID = uuid.uuid4().hex


def composer(stream):
    """A plain-text job's Composer, as a worker makes it once per chunk."""
    job = {"subject": "News", "content": TEXT, "template": "default", "stream": stream}
    links = UnsubscribeLinks(
        UnsubscribeTokens(lambda: "bench secret"), "shop", JOB_ID, "https://mail.example.com"
    )
    content = load_content(dump_content({"content": TEXT}))
    return Composer(Templates(), job, content, SENDER, datetime.now(UTC), None, links)


def chunk_check(url, repeat, number):
    """µs per ``reasons`` call over 100 addresses, 10 of them suppressed."""
    client = redis.Redis.from_url(url, decode_responses=True)
    prefix = f"bench-suppressions:{uuid.uuid4().hex[:8]}:"
    store = SuppressionStore(client, prefix)
    try:
        with client.pipeline(transaction=False) as pipe:
            for i in range(10_000):
                pipe.hset(f"{prefix}supp:shop", f"s{i}@example.org", "manual:1790000000:")
            pipe.execute()
        chunk = [f"s{i}@example.org" for i in range(0, 1000, 100)]
        chunk += [f"r{i}@example.org" for i in range(90)]
        return best_microseconds(lambda: store.reasons("shop", chunk), repeat, number)
    finally:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()


def main(argv=None):
    """Print the per-chunk check and the per-message cost with and without the links."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--number", type=int, default=1000)
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    check = chunk_check(args.redis, args.repeat, args.number)
    print(f"suppression check of a 100-recipient chunk (one HMGET): {check:,.0f} µs")
    for stream in ("transactional", "broadcast"):
        made = composer(stream)
        people = ({"email": f"user{i}@example.org"} for i in itertools.count())
        cost = min(
            timeit.repeat(
                lambda made=made, people=people: made.message(next(people), "<1@example.com>"),
                repeat=args.repeat,
                number=args.number,
            )
        )
        print(f"plain-text message, {stream}: {cost / args.number * 1e6:,.1f} µs")


if __name__ == "__main__":
    main()
