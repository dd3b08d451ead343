"""Console script ``emailsvc-spore INI [-o FILE]``: write the SPORE description of a service."""

import argparse
import sys

from ..api.spore import describe, dumps


def describe_ini(path):
    """Build the app an ini file configures and return its description, without base_url."""
    from pyramid.paster import get_app

    # Loading the app connects to nothing and starts nothing (the embedded Redis and worker
    # belong to the serving pserve only), so this works next to a running server.
    app = get_app(path)
    try:
        return describe(app.registry)
    finally:
        app.registry.emailsvc.close()


def main(argv=None):
    """Console script ``emailsvc-spore INI [-o FILE]``: write the SPORE description."""
    parser = argparse.ArgumentParser(
        prog="emailsvc-spore",
        description="Write the SPORE description of the service an ini file configures.",
    )
    parser.add_argument("ini", help="the ini file, e.g. production.ini")
    parser.add_argument("-o", "--output", help="write here instead of standard output")
    args = parser.parse_args(argv)
    text = dumps(describe_ini(args.ini))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0
