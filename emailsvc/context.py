"""What the web process builds once at start-up and keeps in ``registry.emailsvc``."""

from . import store as redis_store
from .jobs import JobStore
from .rendering import Templates
from .settings import as_int


class ServiceContext:
    """Settings read and checked once, the job store and the template allow-list."""

    def __init__(self, settings):
        self.settings = settings
        self.chunk_size = as_int(settings, "emailsvc.chunk_size", minimum=1)
        self.max_body_bytes = as_int(settings, "emailsvc.max_body_bytes", minimum=1024)
        self.templates = Templates(settings["emailsvc.template_dir"])
        self.store = JobStore(
            redis_store.connect(settings),
            settings["emailsvc.redis_prefix"],
            as_int(settings, "emailsvc.job_ttl_seconds", minimum=1),
        )
        self.schema_bindings = {
            "max_recipients": as_int(settings, "emailsvc.max_recipients", minimum=1),
            "templates": self.templates.names,
        }
