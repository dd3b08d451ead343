"""The cost per message of a VERP envelope sender: minting ``bounces+<token>@<domain>``.

    .venv/bin/python -m bench.verp [--repeat N] [--number N]

Times ``VerpAddresses.address`` as a worker calls it once per message (an HMAC-SHA256
over 20 bytes from a keyed copy, then base32), and ``read`` as ``emailsvc-bounces`` calls
it once per report; the best of ``--repeat`` timings of ``--number`` calls, in
microseconds per call. No Redis, no network.
"""

import argparse
import os
import platform
import timeit

from emailsvc.jobs.records import new_id
from emailsvc.mail.verp import VerpAddresses, VerpTokens


def main(argv=None):
    """Print the microseconds per minted address and per address read."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=100_000)
    args = parser.parse_args(argv)
    verp = VerpAddresses(VerpTokens(lambda: "a bench secret"), "bounces.example.com")
    job = new_id()
    address = verp.address(job, 1234)
    timings = {
        "mint (per message)": lambda: verp.address(job, 1234),
        "read (per report)": lambda: verp.read(address),
    }
    load = os.getloadavg()[0]
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, load {load:.1f}")
    for name, call in timings.items():
        best = min(timeit.repeat(call, repeat=args.repeat, number=args.number))
        print(f"{name}: {best / args.number * 1e6:.2f} µs")


if __name__ == "__main__":
    main()
