"""Console script ``emailsvc-settings INI``: the effective settings of an ini, secrets masked."""

import argparse
import sys

from ..settings import (
    DECLARED,
    SettingsError,
    env_name,
    from_ini,
    markdown_table,
    without_password,
)


def main(argv=None):
    """Print each setting as ``name = value    (VARIABLE)``, or the README's table."""
    parser = argparse.ArgumentParser(
        prog="emailsvc-settings",
        description="Print the effective settings of an ini file, environment included.",
    )
    parser.add_argument("ini", nargs="?", help="the ini file, e.g. production.ini")
    parser.add_argument(
        "--markdown", action="store_true", help="print the table of every setting instead"
    )
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown_table())
        return 0
    if not args.ini:
        parser.error("an ini file is needed (or --markdown)")
    try:
        settings = from_ini(args.ini)
    except SettingsError as exc:
        print(f"emailsvc-settings: {exc}", file=sys.stderr)
        return 2
    for key, value in sorted(settings.raw().items()):
        secret = key in DECLARED and DECLARED[key].secret
        # A URL setting may carry its password in its user information: mask that too.
        shown = "********" if secret and value else without_password(value)
        print(f"{key} = {shown}    ({env_name(key)})")
    return 0
