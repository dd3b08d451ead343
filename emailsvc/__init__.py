"""emailsvc: an email-sending microservice (Pyramid, Cornice, Celery, Redis)."""

import logging

from pyramid.config import Configurator
from pyramid.tweens import EXCVIEW

from . import settings as emailsvc_settings
from .auth import APIKeySecurityPolicy
from .context import ServiceContext
from .tasks import app as celery_app
from .tasks import configure as configure_celery

log = logging.getLogger(__name__)


def main(global_config, **settings):
    """Build the WSGI application from the ini's ``[app:main]`` settings."""
    settings = emailsvc_settings.load(settings)
    embedded = None
    if not settings["emailsvc.redis_url"]:
        from .embedded import EmbeddedServices

        embedded = EmbeddedServices(settings, (global_config or {}).get("__file__"))
        embedded.start()
    with Configurator(settings=settings) as config:
        config.include("cornice")
        # Lets views declare response_schemas (used by /openapi.json and /spore).
        config.include("cornice_swagger")
        context = config.registry.emailsvc = ServiceContext(settings)
        config.set_security_policy(APIKeySecurityPolicy(context.require_api_key, context.keyring))
        _log_authentication(context)
        config.registry.emailsvc_embedded = embedded
        configure_celery(celery_app, settings)
        # Outermost, so that it logs the status the client gets, error views included.
        config.add_tween("emailsvc.requestlog.request_log_tween_factory", over=EXCVIEW)
        config.scan(".views")
        config.scan(".heartbeat")
        config.scan(".errors")
        config.scan(".spore")
        config.scan(".openapi")
        app = config.make_wsgi_app()
    return app


def _log_authentication(context):
    # Operators must see at start-up whether anyone who reaches the port can send mail.
    if not context.require_api_key:
        log.warning(
            "emailsvc.require_api_key is off: the service runs open, any caller can send email"
        )
    elif not context.keyring.entries:
        log.warning("emailsvc.api_keys is empty: every /email request will get 401")
    else:
        log.info("API keys required; clients: %s", ", ".join(context.keyring.clients))
