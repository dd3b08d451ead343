"""What the web process builds once at start-up and keeps in ``registry.emailsvc``."""

from . import store as redis_store
from .auth import KeyRing, parse_api_keys
from .jobs import JobStore
from .limits import RateLimiter, read_limits
from .rendering import Templates
from .senders import read_senders
from .settings import as_bool, as_int


class ServiceContext:
    """Settings read and checked once, the job store and the template allow-list."""

    def __init__(self, settings):
        self.settings = settings
        self.chunk_size = as_int(settings, "emailsvc.chunk_size", minimum=1)
        self.max_body_bytes = as_int(settings, "emailsvc.max_body_bytes", minimum=1024)
        # Read by other modules (the SPORE description says ``authentication: true``).
        self.require_api_key = as_bool(settings, "emailsvc.require_api_key")
        self.keyring = KeyRing(parse_api_keys(settings["emailsvc.api_keys"]))
        self.senders = read_senders(settings)
        self.templates = Templates(settings["emailsvc.template_dir"])
        redis = redis_store.connect(settings)
        self.store = JobStore(
            redis,
            settings["emailsvc.redis_prefix"],
            as_int(settings, "emailsvc.job_ttl_seconds", minimum=1),
        )
        self.limiter = RateLimiter(redis, settings["emailsvc.redis_prefix"], read_limits(settings))
        self.schema_bindings = {
            "max_recipients": as_int(settings, "emailsvc.max_recipients", minimum=1),
            "max_content_bytes": as_int(settings, "emailsvc.max_content_bytes", minimum=1),
            "templates": self.templates.names,
        }
        self._bound_schemas = {}

    def bound_schema(self, schema_class):
        """``schema_class`` bound to these settings, built once rather than per request."""
        if schema_class not in self._bound_schemas:
            self._bound_schemas[schema_class] = schema_class().bind(**self.schema_bindings)
        return self._bound_schemas[schema_class]
