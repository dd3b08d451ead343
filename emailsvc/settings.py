"""Every setting of the service: declared once, merged once, typed once.

A setting's value comes from its default, then the ini file's ``[app:main]``, then its
``EMAILSVC_*`` environment variable (``emailsvc.smtp.host`` <- ``EMAILSVC_SMTP_HOST``).
``load()`` merges and converts them at start-up into a ``Settings`` object whose values
are already typed; a bad value stops start-up with a message naming the setting and its
variable. No other module parses a setting string.
"""

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

# Client names appear in Redis keys, settings names and environment variable names.
CLIENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}\Z")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
# The password of a URL's user information: shown masked in error messages.
_URL_PASSWORD = re.compile(r"(//[^/@:;]*:)[^@;]*@")


class SettingsError(ValueError):
    """A setting has a value it cannot take; the message names the setting and its variable."""


# --- value types: each turns the text of an ini line or variable into a typed value ---


def text(value):
    """Any text, stripped of surrounding white space."""
    return str(value).strip()


def boolean(value):
    """``true``/``false`` and the usual spellings (``1``, ``yes``, ``on``, ...)."""
    word = str(value).strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError("must be true or false")


def integer(minimum=0):
    """A whole number of at least ``minimum``."""

    def parse(value):
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ValueError("must be a whole number") from None
        if number < minimum:
            raise ValueError(f"must be at least {minimum}")
        return number

    parse.describe = f"integer >= {minimum}"
    return parse


def seconds(value):
    """A positive number of seconds (a fraction is allowed)."""
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError("must be a number") from None
    if not number > 0 or number == float("inf"):
        raise ValueError("must be a positive number")
    return number


def factor(value):
    """A number of at least 1 (a multiplier)."""
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError("must be a number") from None
    if not 1 <= number < float("inf"):
        raise ValueError("must be at least 1")
    return number


def choice(*options):
    """One of ``options``."""

    def parse(value):
        word = str(value).strip()
        if word not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return word

    parse.describe = " or ".join(options)
    return parse


def domains(value):
    """Whitespace-separated domain names, lower-cased."""
    return frozenset(word.lower() for word in str(value).split())


def networks(value):
    """Whitespace-separated IP addresses or networks (``10.0.0.0/8 ::1``)."""
    try:
        return tuple(ipaddress.ip_network(word, strict=False) for word in str(value).split())
    except ValueError as exc:
        raise ValueError(f"must list IP addresses or networks ({exc})") from None


def api_key_entries(value):
    """Whitespace-separated ``client:sha256hex`` entries, as ``(client, digest)`` pairs.

    A bad entry is named by its position, never by its content: it may be a key pasted
    by mistake.
    """
    entries = []
    for position, entry in enumerate(str(value or "").split(), start=1):
        client, _, digest = entry.rpartition(":")
        digest = digest.lower()
        if not CLIENT_NAME.match(client) or not _SHA256_HEX.match(digest):
            raise ValueError(
                f"entry {position} must be client:sha256hex "
                "(client: lower-case letters, digits, '_' or '-'; 64 hex digits)"
            )
        entries.append((client, digest))
    return tuple(entries)


# A DNS label of letters, digits and hyphens; names are ASCII (IDNA A-labels).
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})+\Z")
_SELECTOR = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\Z")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class DKIMKeyEntry:
    """Where one sender domain's DKIM private key is: a file, or an environment variable."""

    domain: str
    selector: str
    path: str = ""
    variable: str = ""

    def __str__(self):
        source = f"env:{self.variable}" if self.variable else self.path
        return f"{self.domain}:{self.selector}:{source}"


def dkim_key_entries(value):
    """Whitespace-separated ``domain:selector:/path/to/key.pem`` or
    ``domain:selector:env:VARIABLE`` entries, one per sender domain, as ``DKIMKeyEntry``.

    The key itself is never part of the setting: only where it is read from.
    """
    entries = {}
    for position, entry in enumerate(str(value or "").split(), start=1):
        domain, _, rest = entry.partition(":")
        selector, _, source = rest.partition(":")
        domain, selector = domain.lower(), selector.lower()
        if not _DOMAIN.match(domain) or not _SELECTOR.match(selector) or not source:
            raise ValueError(
                f"entry {position} must be domain:selector:/path/to/key.pem or "
                "domain:selector:env:VARIABLE (an ASCII domain and selector)"
            )
        if domain in entries:
            raise ValueError(f"entry {position} names {domain} again: one key per domain")
        if source.startswith("env:"):
            variable = source[len("env:") :]
            if not _VARIABLE.match(variable):
                raise ValueError(f"entry {position} must name an environment variable after env:")
            entries[domain] = DKIMKeyEntry(domain, selector, variable=variable)
        else:
            entries[domain] = DKIMKeyEntry(domain, selector, path=source)
    return tuple(entries.values())


def public_url(value):
    """Empty, or an absolute http(s) URL without query or fragment, its final ``/`` removed."""
    text = str(value).strip()
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError("must be an http:// or https:// URL such as https://mail.example.com")
    return text.rstrip("/")


def domain(value):
    """Empty, or one ASCII domain name (IDNA A-labels), lower-cased."""
    name = str(value).strip().lower()
    if name and not _DOMAIN.match(name):
        raise ValueError("must be an ASCII domain name such as bounces.example.com")
    return name


def mailbox(value):
    """Empty, or one plain ASCII address (``unsubscribe@example.com``)."""
    text = str(value).strip()
    if text and not re.fullmatch(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", text):
        raise ValueError("must be an ASCII address such as unsubscribe@example.com")
    return text


# --- where Redis and the broker are ---

_REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel")
_AMQP_SCHEMES = ("amqp", "amqps")
SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelGroup:
    """A Redis primary found through Redis Sentinel: the sentinels, the group's name, the db.

    ``username`` and ``password`` log in to the Redis servers (the sentinels are asked
    without them).
    """

    sentinels: tuple
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None


class RedisURL(str):
    """A Redis location, as written; ``sentinel`` is its ``SentinelGroup`` when it names one.

    A ``str``, so that it reads, prints and compares as the text of the setting.
    """

    sentinel = None


class BrokerURL(str):
    """The broker, as written: ``transport`` is ``amqp`` or ``redis``; for a Redis broker,
    ``redis`` is its ``RedisURL``. Empty: the Redis of ``emailsvc.redis_url``."""

    transport = "redis"
    redis = None


def _port(parts, default=None):
    try:
        return parts.port or default
    except ValueError:
        raise ValueError("has a port that is not a number from 1 to 65535") from None


def _sentinel_group(url):
    """Parse ``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/name[/db]``."""
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ValueError("takes no query or fragment (redis+sentinel://hosts/name/db)")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    sentinels = []
    for host in hosts.split(","):
        address = urlsplit("//" + host.strip())
        if not address.hostname:
            raise ValueError("must name at least one sentinel: redis+sentinel://host:26379/name")
        sentinels.append((address.hostname, _port(address, SENTINEL_PORT)))
    path = [segment for segment in parts.path.split("/") if segment]
    if not path or len(path) > 2:
        raise ValueError("must end with the Sentinel group's name and an optional db: /name/0")
    db = path[1] if len(path) == 2 else "0"
    if not db.isdigit():
        raise ValueError("has a db that is not a whole number (/name/0)")
    return SentinelGroup(
        sentinels=tuple(sentinels),
        service=unquote(path[0]),
        db=int(db),
        username=unquote(username) or None,
        password=unquote(password) or None,
    )


def redis_url(value):
    """A Redis location: ``redis://``, ``rediss://``, ``unix://`` or ``redis+sentinel://``."""
    url = RedisURL(str(value).strip())
    if not url:
        return url
    scheme, separator, _ = url.partition("://")
    if not separator or scheme.lower() not in _REDIS_SCHEMES:
        raise ValueError("must be a redis://, rediss://, unix:// or redis+sentinel:// URL")
    if scheme.lower() == "redis+sentinel":
        url.sentinel = _sentinel_group(url)
    elif scheme.lower() == "unix":
        if not urlsplit(url).path:
            raise ValueError("must name the socket's path: unix:///path/to/redis.sock")
    elif not urlsplit(url).hostname:
        raise ValueError("must name a host: redis://host:6379/0")
    else:
        _port(urlsplit(url))
    return url


def broker_url(value):
    """RabbitMQ (``amqp://``, ``amqps://``; several nodes separated by ``;``), a Redis
    location as ``redis_url`` takes, or empty for the Redis of ``emailsvc.redis_url``."""
    url = BrokerURL(str(value).strip())
    if not url:
        return url
    scheme = url.partition("://")[0].lower()
    if scheme in _REDIS_SCHEMES:
        url.redis = redis_url(url)
        return url
    if scheme not in _AMQP_SCHEMES:
        raise ValueError(
            "must be an amqp:// or amqps:// URL (RabbitMQ; several nodes separated by ';'), "
            "or a Redis URL as emailsvc.redis_url takes"
        )
    for node in url.split(";"):
        parts = urlsplit(node.strip())
        if parts.scheme.lower() not in _AMQP_SCHEMES or not parts.hostname:
            raise ValueError("must list amqp://user:password@host:5672/vhost URLs, ';' between")
        _port(parts)
    url.transport = "amqp"
    return url


# --- the declaration ---


@dataclass(frozen=True)
class Setting:
    """One setting: its name, type, default (as written in an ini) and what it is for."""

    name: str
    parse: Any
    default: str
    help: str
    secret: bool = False

    @property
    def variable(self):
        """The environment variable that overrides it."""
        return env_name(self.name)


def _s(name, parse, default, help, secret=False):
    return Setting("emailsvc." + name, parse, default, help, secret)


SETTINGS = (
    _s(
        "redis_url",
        redis_url,
        "",
        "Redis for the job records, and the queue unless `emailsvc.broker_url` is set "
        "(`redis://host:6379/0`, `unix:///path`, or through Sentinel "
        "`redis+sentinel://host1:26379,host2:26379/mymaster/0`); empty = an embedded "
        "Redis and worker, started by the serving `pserve` only",
    ),
    _s(
        "broker_url",
        broker_url,
        "",
        "the queue's broker when it is not that Redis: RabbitMQ "
        "(`amqp://user:password@host:5672/vhost`, `;` between the nodes of a cluster; "
        "quorum queues and publisher confirms) or another Redis URL; empty = the Redis of "
        "`emailsvc.redis_url`",
    ),
    _s("redis_prefix", text, "emailsvc:", "prefix of every key written, queue keys included"),
    _s("redis_timeout_seconds", seconds, "5", "connect and read timeout towards Redis"),
    _s(
        "broker_timeout_seconds",
        seconds,
        "5",
        "RabbitMQ: connect timeout, and how long a publish waits for the broker's confirmation",
    ),
    _s(
        "embedded.redis_file",
        text,
        "var/redis.rdb",
        "data file of the embedded Redis; its folder also holds its socket and the lock "
        "naming the server that owns it",
    ),
    _s(
        "embedded.worker",
        boolean,
        "true",
        "start a Celery worker with the server in embedded mode",
    ),
    _s("embedded.worker_concurrency", integer(1), "2", "its processes"),
    _s(
        "template_dir",
        text,
        "",
        "folder of the `<name>.txt`, `<name>.pt` and `<name>.subject.txt` templates; "
        "empty = the ones shipped in the package",
    ),
    _s(
        "mail.transport",
        choice("smtp", "outbox"),
        "smtp",
        "`smtp` (the relay below) or `outbox` (`.eml` files)",
    ),
    _s("outbox_dir", text, "var/outbox", "folder of the outbox transport"),
    _s("smtp.host", text, "localhost", "the relay's host"),
    _s("smtp.port", integer(1), "25", "the relay's port"),
    _s("smtp.username", text, "", "login at the relay, when set"),
    _s("smtp.password", text, "", "its password (only from the environment)", secret=True),
    _s("smtp.starttls", boolean, "false", "upgrade the connection with STARTTLS"),
    _s("smtp.ssl", boolean, "false", "TLS from the start (SMTPS)"),
    _s("smtp.timeout_seconds", seconds, "30", "socket timeout towards the relay"),
    _s(
        "smtp.connections",
        integer(1),
        "1",
        "concurrent connections to the relay per worker process, each sending the next "
        "message of the chunk; a crash may then duplicate up to this many messages per "
        "process (docs/RELIABILITY.md)",
    ),
    _s("sender", text, "emailsvc@localhost", "the From address (and envelope sender)"),
    _s("sender_name", text, "", "display name of the From header"),
    _s(
        "public_url",
        public_url,
        "",
        "the service's address as recipients reach it (`https://mail.example.com`): "
        "broadcast messages' unsubscribe links start with it; empty = the URL the job was "
        "posted to",
    ),
    _s(
        "unsubscribe.secret",
        text,
        "",
        "the secret of the unsubscribe tokens (only from the environment; the same in "
        "every web and worker process); empty = one generated and kept in Redis, for "
        "development",
        secret=True,
    ),
    _s(
        "unsubscribe.mailbox",
        mailbox,
        "",
        "when set, List-Unsubscribe also offers `mailto:` this address (with the token in "
        "the subject); reading that mailbox is the operator's",
    ),
    _s(
        "bounce_domain",
        domain,
        "",
        "when set, each message's envelope sender is `bounces+<token>@` this domain (VERP), "
        "whose MX is `emailsvc-bounces` (docs/DELIVERABILITY.md); empty = `emailsvc.sender`",
    ),
    _s("bounces.host", text, "127.0.0.1", "where `emailsvc-bounces` listens for SMTP"),
    _s("bounces.port", integer(1), "8025", "its port"),
    _s(
        "bounces.dead_letter_dir",
        text,
        "var/bounces",
        "folder where `emailsvc-bounces` keeps, as `.eml` files, the mail it could not act "
        "on (unparseable, not a report, a token that does not verify, an expired job)",
    ),
    _s(
        "bounces.max_message_bytes",
        integer(1024),
        "10485760",
        "largest message `emailsvc-bounces` accepts (552 above)",
    ),
    _s("max_recipients", integer(1), "10000", "recipients per job"),
    _s(
        "max_body_bytes",
        integer(1024),
        "16777216",
        "largest request body (413 above); at least the base64 of "
        "`emailsvc.max_attachment_bytes` (waitress and nginx follow it)",
    ),
    _s(
        "max_content_bytes",
        integer(1),
        "1048576",
        "largest `content`, and largest `html`, UTF-8 bytes (400 above)",
    ),
    _s("max_attachments", integer(0), "10", "attachments per job, inline images included"),
    _s(
        "max_attachment_bytes",
        integer(0),
        "10485760",
        "decoded size of a job's attachments together (400 above)",
    ),
    _s(
        "pdf.timeout_seconds",
        seconds,
        "10",
        "longest rendering of one per-recipient PDF in a worker (the recipient fails above)",
    ),
    _s(
        "pdf.max_bytes",
        integer(1024),
        "5242880",
        "largest per-recipient PDF (the recipient fails above)",
    ),
    _s("chunk_size", integer(1), "100", "recipients per Celery task"),
    _s("job_ttl_seconds", integer(1), "604800", "how long job records are kept"),
    _s(
        "idempotency_ttl_seconds",
        integer(1),
        "86400",
        "how long a POST's Idempotency-Key replays its first answer (then the key is free)",
    ),
    _s("queue", text, "emailsvc", "Celery queue name"),
    _s(
        "visibility_timeout_seconds",
        integer(60),
        "3600",
        "Redis redelivers a task not acknowledged after this long; must stay far above "
        "the time one chunk takes",
    ),
    _s(
        "delivery_lifetime_seconds",
        seconds,
        "86400",
        "how long transient failures are retried; then the remaining recipients fail "
        "with the last error",
    ),
    _s("retry.initial_delay_seconds", seconds, "30", "wait before the first retry"),
    _s("retry.backoff_factor", factor, "2", "each wait is this many times the one before"),
    _s("retry.max_delay_seconds", seconds, "1800", "longest wait between two attempts"),
    _s(
        "lease_seconds",
        integer(2),
        "6",
        "a chunk's lease in Redis, renewed while a worker delivers it: a killed worker's "
        "chunk is taken up again at most this long after",
    ),
    _s(
        "scheduler.interval_seconds",
        seconds,
        "1",
        "how often workers publish the retries that are due",
    ),
    _s(
        "watchdog.interval_seconds",
        seconds,
        "5",
        "how often workers look for lost work",
    ),
    _s(
        "watchdog.stall_seconds",
        seconds,
        "30",
        "a job without progress for this long is looked at, and its lost chunks re-enqueued",
    ),
    _s(
        "heartbeat.timeout_seconds",
        seconds,
        "3",
        "time each `/__heartbeat__` check may take",
    ),
    _s(
        "heartbeat.worker_reply_seconds",
        seconds,
        "1",
        "how long `/__heartbeat__` waits for workers to answer",
    ),
    _s(
        "version_file",
        text,
        "version.json",
        "the Dockerflow file `/__version__` serves when it exists",
    ),
    _s(
        "commit",
        text,
        "",
        "the commit `/__version__` names when there is no version file (`unknown` if empty)",
    ),
    _s(
        "require_api_key",
        boolean,
        "false",
        "require `Authorization: Bearer <key>` on `/email` (see docs/SECURITY.md)",
    ),
    _s(
        "api_keys",
        api_key_entries,
        "",
        "`client:sha256hex` entries, whitespace-separated (`emailsvc-keygen CLIENT` prints one)",
        secret=True,
    ),
    _s(
        "dkim.keys",
        dkim_key_entries,
        "",
        "DKIM keys by sender domain, whitespace-separated: `domain:selector:/path/key.pem`, "
        "or `domain:selector:env:VARIABLE` for a key (PEM) in that variable; a message whose "
        "From domain has a key is signed (`emailsvc-dkim-keygen` makes one; "
        "docs/DELIVERABILITY.md)",
    ),
    _s(
        "log_format",
        choice("text", "json"),
        "text",
        "`text` (readable lines) or `json` (one JSON object per line) for every process",
    ),
    _s(
        "metrics.dir",
        text,
        "",
        "folder where every process of one deployment on one host writes its counts, "
        "added up by `/metrics` (Prometheus multiprocess mode; a tmpfs, empty at start); "
        "empty = each process counts in memory, and workers' counts are not served",
    ),
    _s(
        "metrics.allow",
        networks,
        "",
        "addresses or networks that may read `/metrics` (`10.0.0.0/8 ::1`); empty = any",
    ),
    _s(
        "metrics.token",
        text,
        "",
        "when set, `/metrics` requires `Authorization: Bearer <token>`",
        secret=True,
    ),
    _s(
        "metrics.worker_port",
        integer(0),
        "0",
        "a worker serves the counts of `emailsvc.metrics.dir` on this port at `/metrics` "
        "(when the web process cannot read that folder); 0 = none",
    ),
    _s(
        "worker.task_events",
        boolean,
        "false",
        "workers send Celery task events (what Flower shows of each task)",
    ),
    _s(
        "dashboard.enabled",
        boolean,
        "false",
        "serve the operator dashboard at `/dashboard/` (jobs, and the outbox's messages)",
    ),
    _s(
        "dashboard.require_login",
        boolean,
        "true",
        "the dashboard asks for `emailsvc.dashboard.operator_key`; false only on a "
        "developer's machine",
    ),
    _s(
        "dashboard.operator_key",
        text,
        "",
        "the operators' key for the dashboard's login (only from the environment)",
        secret=True,
    ),
    _s(
        "limit.requests_per_minute",
        integer(0),
        "600",
        "accepted jobs per client per minute (0 = none; 429 above)",
    ),
    _s(
        "limit.recipients_per_hour",
        integer(0),
        "100000",
        "recipients per client per hour (0 = none; 429 above)",
    ),
)

# Settings that exist once per client named in ``emailsvc.api_keys``; ``{client}`` is its name.
# Their environment variables are looked up for every configured client.
PER_CLIENT = (
    _s(
        "limit.{client}.requests_per_minute",
        integer(0),
        "the default",
        "one client's own request limit",
    ),
    _s(
        "limit.{client}.recipients_per_hour",
        integer(0),
        "the default",
        "one client's own recipient limit",
    ),
    _s(
        "senders.{client}",
        domains,
        "",
        "domains that client may use in a job's `from` (403 otherwise)",
    ),
)

DECLARED = {setting.name: setting for setting in SETTINGS}
LIMIT_NAMES = ("requests_per_minute", "recipients_per_hour")


def env_name(key):
    """Return the environment variable that overrides ``key`` (``a.b-c`` -> ``A_B_C``)."""
    return key.upper().replace(".", "_").replace("-", "_")


class Settings(Mapping):
    """The typed settings of one process: ``settings["emailsvc.smtp.port"]`` is an int.

    Per-client settings are read through ``limits_for(client)`` and ``senders_for(client)``.
    """

    def __init__(self, values, per_client):
        self._values = dict(values)
        self._per_client = dict(per_client)

    def __getitem__(self, name):
        return self._values[name]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def replace(self, **changes):
        """A copy with some settings changed, by their names without ``emailsvc.``."""
        values = dict(self._values)
        for short, value in changes.items():
            name = "emailsvc." + short
            # Text is typed as if it came from an ini (a URL is parsed, a number converted).
            if isinstance(value, str) and name in DECLARED:
                value = DECLARED[name].parse(value)
            values[name] = value
        return Settings(values, self._per_client)

    @property
    def clients(self):
        """The client names configured in ``emailsvc.api_keys``, sorted."""
        return sorted({client for client, _ in self["emailsvc.api_keys"]})

    def limits_for(self, client):
        """The limits that apply to ``client``: its own where set, else the defaults."""
        return {
            name: self._per_client.get(
                f"emailsvc.limit.{client}.{name}", self[f"emailsvc.limit.{name}"]
            )
            for name in LIMIT_NAMES
        }

    def senders_for(self, client):
        """The domains ``client`` may use in a job's ``from``; none unless configured."""
        return self._per_client.get(f"emailsvc.senders.{client}", frozenset())

    def raw(self):
        """Every value as text, as an ini would hold it (secrets included)."""
        return {name: _as_text(value) for name, value in self._values.items()}


def _as_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, frozenset):
        return " ".join(sorted(value))
    if isinstance(value, tuple):
        return " ".join(
            str(item) if not isinstance(item, tuple) else f"{item[0]}:{item[1]}" for item in value
        )
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def without_password(text):
    """``text`` with the password of any URL in it masked (``//user:****@host``)."""
    return _URL_PASSWORD.sub(r"\1****@", text)


def _per_client_setting(name):
    """The declaration a per-client setting name matches, and its client, or (None, None)."""
    for setting in PER_CLIENT:
        prefix, _, suffix = setting.name.partition("{client}")
        if name.startswith(prefix) and name.endswith(suffix):
            client = name[len(prefix) : len(name) - len(suffix)]
            if CLIENT_NAME.match(client):
                return setting, client
    return None, None


def _convert(setting, name, value, source):
    try:
        return setting.parse(value)
    except ValueError as exc:
        shown = "(hidden)" if setting.secret else repr(without_password(str(value))[:100])
        raise SettingsError(
            f"{name} ({env_name(name)}) {exc}; got {shown} from {source}"
        ) from None


def load(ini_settings=None, environ=None):
    """Merge defaults, the ini's settings and ``EMAILSVC_*`` variables; return ``Settings``.

    Raises ``SettingsError`` for a bad value or an ``emailsvc.*`` name that is no setting
    (a typo would otherwise be ignored silently).
    """
    environ = os.environ if environ is None else environ
    ini_settings = ini_settings or {}
    values = {}
    for setting in SETTINGS:
        raw, source = setting.default, "the default"
        if setting.name in ini_settings:
            raw, source = ini_settings[setting.name], "the ini file"
        if setting.variable in environ:
            raw, source = environ[setting.variable], f"${setting.variable}"
        values[setting.name] = _convert(setting, setting.name, raw, source)
    per_client = {}
    for name, raw in ini_settings.items():
        if not name.startswith("emailsvc.") or name in DECLARED:
            continue
        setting, _client = _per_client_setting(name)
        if setting is None:
            raise SettingsError(
                f"{name} is not a setting of emailsvc (see the README's settings table)"
            )
        per_client[name] = _convert(setting, name, raw, "the ini file")
    for client in {client for client, _ in values["emailsvc.api_keys"]}:
        for setting in PER_CLIENT:
            name = setting.name.format(client=client)
            variable = env_name(name)
            if variable in environ:
                per_client[name] = _convert(setting, name, environ[variable], f"${variable}")
    _check_body_limit(values)
    return Settings(values, per_client)


def _check_body_limit(values):
    # A job carrying its largest attachments must fit in a request body: base64 makes 4
    # bytes of every 3, and the rest of the body needs room too.
    attachments = values["emailsvc.max_attachment_bytes"]
    needed = -(-attachments // 3) * 4 + 1024
    if values["emailsvc.max_body_bytes"] < needed:
        raise SettingsError(
            f"emailsvc.max_body_bytes ({values['emailsvc.max_body_bytes']}) must be at least "
            f"{needed}: the base64 of emailsvc.max_attachment_bytes ({attachments}) must fit"
        )


def from_ini(path, environ=None):
    """Read the ``[app:main]`` settings of an ini file (``here`` set), then ``load`` them."""
    from plaster import get_settings

    return load(get_settings(os.path.abspath(path), "app:main"), environ)


def markdown_table():
    """The README's settings table, generated from the declaration."""
    rows = ["| setting | default | meaning |", "| --- | --- | --- |"]
    for setting in SETTINGS + PER_CLIENT:
        default = f"`{setting.default}`" if setting.default else "empty"
        if setting in PER_CLIENT and setting.default == "the default":
            default = "the default"
        rows.append(f"| `{setting.name}` | {default} | {setting.help} |")
    return "\n".join(rows) + "\n"
