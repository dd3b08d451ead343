"""emailsvc: an email-sending microservice (Pyramid, Cornice, Celery, Redis)."""

from pyramid.config import Configurator


def main(global_config, **settings):
    """Build the WSGI application from the ini's ``[app:main]`` settings."""
    with Configurator(settings=settings) as config:
        # The embedded default starts its worker with the same ini file.
        config.registry.ini_file = (global_config or {}).get("__file__")
        # Typed settings, embedded services when asked, and the parts of the service.
        config.include("emailsvc.assembly")
        # The HTTP API: /email, its descriptions, the Dockerflow endpoints, the errors.
        config.include("emailsvc.api")
        # Each backend adds its /__heartbeat__ check: Redis and the workers, the relay.
        config.include("emailsvc.jobs")
        config.include("emailsvc.mail")
        # GET /metrics and the count of every request.
        config.include("emailsvc.metrics")
        # The operator dashboard at /dashboard/, when emailsvc.dashboard.enabled.
        config.include("emailsvc.dashboard")
        return config.make_wsgi_app()
