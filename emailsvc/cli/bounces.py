"""Console script ``emailsvc-bounces [INI]``: the SMTP receiver of bounces and complaints.

It listens on ``emailsvc.bounces.host``/``port`` and takes reports for the VERP addresses
of ``emailsvc.bounce_domain`` (``emailsvc.bounces``); settings come from the ini's
``[app:main]`` when one is given, and from ``EMAILSVC_*`` variables. It runs until
SIGTERM or SIGINT.
"""

import logging
import signal
import sys
import threading

from ..assembly import assemble_bounces
from ..bounces.receiver import controller
from ..logs import use_format
from ..settings import SettingsError, from_ini, load

log = logging.getLogger("emailsvc.bounces")


def _settings(args):
    if len(args) > 1 or (args and args[0].startswith("-")):
        raise SettingsError("usage: emailsvc-bounces [INI]")
    return from_ini(args[0]) if args else load()


def main(argv=None):
    """Serve until told to stop; 2 on bad usage or settings."""
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s"
    )
    # aiosmtpd logs every SMTP command at INFO: its warnings are enough here.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    try:
        settings = _settings(args)
        use_format(settings["emailsvc.log_format"])
        handler, client = assemble_bounces(settings)
    except SettingsError as exc:
        print(f"emailsvc-bounces: {exc}", file=sys.stderr)
        return 2
    host, port = settings["emailsvc.bounces.host"], settings["emailsvc.bounces.port"]
    server = controller(handler, settings)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    log.info(
        "emailsvc-bounces listening on %s:%d for bounces+...@%s",
        host,
        port,
        settings["emailsvc.bounce_domain"],
    )
    try:
        # A timeout, so that the signal's handler runs without waiting for anything else.
        while not stop.wait(1):
            pass
    finally:
        server.stop()
        client.close()
    log.info("emailsvc-bounces stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
