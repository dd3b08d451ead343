"""The composition root: everything a process needs, built from the typed settings.

The web process keeps its ``Assembly`` in Pyramid's registry (``registry.emailsvc``); a
worker builds the same from the same ini through ``celery -A emailsvc.worker worker
--ini FILE``. Nothing here is global: two assemblies in one process, with different key
prefixes, share no queue, job or connection pool.
"""

import logging
from dataclasses import dataclass
from email.headerregistry import Address

import redis
from celery import Celery
from redis.sentinel import Sentinel

from .api.auth import KeyRing
from .api.limits import RateLimiter
from .jobs.delivery import Deliverer
from .jobs.dispatch import Revoker
from .jobs.idempotency import IdempotencyStore
from .jobs.records import JobStore
from .jobs.suppressions import SuppressionStore
from .jobs.tasks import configure_celery, new_celery_app
from .jobs.watchdog import PeriodicStep
from .logs import use_format
from .mail.dkim import DKIMKeyError, DKIMSigner
from .mail.messages import sender_address
from .mail.pdf import pdf_renderer
from .mail.templates import Templates
from .mail.transports import transport_from_settings
from .mail.unsubscribe import UnsubscribeTokens
from .mail.verp import VerpAddresses, VerpTokens
from .metrics import Metrics
from .settings import Settings, SettingsError, load

log = logging.getLogger(__name__)


@dataclass
class Assembly:
    """The service's parts, wired once per process."""

    settings: Settings
    redis: redis.Redis
    jobs: JobStore
    #: The clients' suppression lists.
    suppressions: SuppressionStore
    #: Mints and reads the tokens of broadcast messages' unsubscribe links.
    unsubscribe: UnsubscribeTokens
    #: The VERP envelope senders under ``emailsvc.bounce_domain``; None when it is empty.
    verp: VerpAddresses | None
    templates: Templates
    transport: object
    sender: Address
    keyring: KeyRing
    limiter: RateLimiter
    idempotency: IdempotencyStore
    deliverer: Deliverer
    #: Renders per-recipient PDFs; None without the pdf extra (WeasyPrint).
    pdf: object
    #: The DKIM keys of ``emailsvc.dkim.keys``, read and parsed once.
    dkim: DKIMSigner
    revoker: Revoker
    celery: Celery
    metrics: Metrics

    def close(self):
        """Release the connections (Redis, the broker pool) and stop the revoker."""
        self.revoker.stop()
        self.celery.close()
        self.redis.close()
        # Through Sentinel, the client's pool also holds connections to the sentinels.
        sentinels = getattr(self.redis.connection_pool, "sentinel_manager", None)
        if sentinels is not None:
            sentinels.close()


def connect_redis(settings):
    """A Redis client for ``emailsvc.redis_url`` with bounded timeouts.

    Through Sentinel (``redis+sentinel://``), the client asks the sentinels where the
    primary is whenever it connects, so after a failover it reconnects to the new one.
    """
    url = settings["emailsvc.redis_url"]
    timeout = settings["emailsvc.redis_timeout_seconds"]
    # Without timeouts a Redis that stopped answering would hang the request thread
    # instead of giving the client a 503.
    options = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "decode_responses": True,
        "health_check_interval": 30,
    }
    group = url.sentinel
    if group is None:
        return redis.Redis.from_url(url, **options)
    sentinels = Sentinel(
        group.sentinels,
        sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
    )
    return sentinels.master_for(
        group.service,
        db=group.db,
        username=group.username,
        password=group.password,
        **options,
    )


def dkim_signer(settings):
    """The DKIM keys of ``emailsvc.dkim.keys``, each read and parsed now.

    A key that cannot be read or used is a configuration error: the process does not
    start rather than send unsigned mail that receivers would hold against the domain.
    """
    try:
        signer = DKIMSigner.from_entries(settings["emailsvc.dkim.keys"])
    except DKIMKeyError as exc:
        raise SettingsError(str(exc)) from None
    sender = settings["emailsvc.sender"]
    if signer.key_for(sender.rpartition("@")[2]) and not sender.isascii():
        # A signed message is sent as bytes, and bytes go with an ASCII envelope only.
        raise SettingsError(
            "emailsvc.sender (EMAILSVC_SENDER) must be an ASCII address to be signed with DKIM"
        )
    return signer


def assemble(settings, celery_app=None):
    """Build the parts of the service from typed ``settings``.

    ``celery_app`` is an unconfigured Celery app to configure (the worker's, which Celery's
    command line must find at import); by default a new one is made.
    """
    # First: a key that cannot be used stops start-up before any connection is opened.
    signer = dkim_signer(settings)
    client = connect_redis(settings)
    prefix = settings["emailsvc.redis_prefix"]
    jobs = JobStore(
        client,
        prefix,
        settings["emailsvc.job_ttl_seconds"],
        settings["emailsvc.watchdog.stall_seconds"],
    )
    suppressions = SuppressionStore(client, prefix)
    secret = settings["emailsvc.unsubscribe.secret"]
    # Asked on first use: a process starts without Redis, as before.
    tokens = UnsubscribeTokens(lambda: secret or suppressions.generated_secret())
    verp = None
    if settings["emailsvc.bounce_domain"]:
        # The same secret, another derived key: one secret for the operator to keep.
        verp_tokens = VerpTokens(lambda: secret or suppressions.generated_secret())
        verp = VerpAddresses(verp_tokens, settings["emailsvc.bounce_domain"])
    templates = Templates(settings["emailsvc.template_dir"])
    transport = transport_from_settings(settings)
    sender = sender_address(settings["emailsvc.sender"], settings["emailsvc.sender_name"])
    metrics = Metrics(settings["emailsvc.metrics.dir"])
    pdf = pdf_renderer(
        templates, settings["emailsvc.pdf.timeout_seconds"], settings["emailsvc.pdf.max_bytes"]
    )
    assembly = Assembly(
        settings=settings,
        redis=client,
        jobs=jobs,
        suppressions=suppressions,
        unsubscribe=tokens,
        verp=verp,
        templates=templates,
        transport=transport,
        sender=sender,
        keyring=KeyRing(settings["emailsvc.api_keys"]),
        limiter=RateLimiter(client, prefix, settings.limits_for),
        idempotency=IdempotencyStore(client, prefix, settings["emailsvc.idempotency_ttl_seconds"]),
        deliverer=Deliverer(
            jobs,
            templates,
            transport,
            sender,
            settings["emailsvc.lease_seconds"],
            connections=settings["emailsvc.smtp.connections"],
            metrics=metrics,
            pdf=pdf,
            signer=signer,
            suppressions=suppressions,
            unsubscribe_tokens=tokens,
            unsubscribe_mailbox=settings["emailsvc.unsubscribe.mailbox"],
            verp=verp,
        ),
        pdf=pdf,
        dkim=signer,
        revoker=Revoker(jobs),
        celery=celery_app if celery_app is not None else new_celery_app(),
        metrics=metrics,
    )
    configure_celery(assembly.celery, settings, assembly)
    # Workers run the periodic step (due retries, the watchdog); web processes never start it.
    assembly.celery.steps["worker"].add(PeriodicStep)
    return assembly


def assemble_bounces(settings):
    """The parts of ``emailsvc-bounces``: its aiosmtpd handler and its Redis client."""
    from .bounces.actions import BounceActions
    from .bounces.receiver import BounceHandler, DeadLetters

    if not settings["emailsvc.bounce_domain"]:
        raise SettingsError(
            "emailsvc-bounces needs emailsvc.bounce_domain (EMAILSVC_BOUNCE_DOMAIN)"
        )
    if not settings["emailsvc.redis_url"]:
        # The embedded Redis belongs to the serving pserve, which starts and stops it.
        raise SettingsError("emailsvc-bounces needs emailsvc.redis_url (EMAILSVC_REDIS_URL)")
    client = connect_redis(settings)
    prefix = settings["emailsvc.redis_prefix"]
    jobs = JobStore(client, prefix, settings["emailsvc.job_ttl_seconds"])
    suppressions = SuppressionStore(client, prefix)
    secret = settings["emailsvc.unsubscribe.secret"]
    tokens = VerpTokens(lambda: secret or suppressions.generated_secret())
    verp = VerpAddresses(tokens, settings["emailsvc.bounce_domain"])
    actions = BounceActions(jobs, suppressions, verp)
    handler = BounceHandler(actions, DeadLetters(settings["emailsvc.bounces.dead_letter_dir"]))
    return handler, client


def includeme(config):
    """Type the ini's settings, keep the Assembly (and the embedded services, when asked)."""
    settings = load(config.registry.settings)
    # pserve configured logging from the ini before this; the setting picks the format.
    use_format(settings["emailsvc.log_format"])
    embedded = None
    if not settings["emailsvc.redis_url"]:
        from .embedded import EmbeddedServices

        # Nothing starts here: only the serving process starts them (emailsvc.server), so
        # proutes, pshell or a script loading the ini never start or stop a Redis.
        embedded = EmbeddedServices(settings, getattr(config.registry, "ini_file", None))
        settings = embedded.settings
    config.registry.emailsvc_embedded = embedded
    config.registry.emailsvc = assemble(settings)
