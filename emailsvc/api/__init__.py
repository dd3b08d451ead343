"""The HTTP API: Cornice services, their schemas and validators, errors and descriptions.

``config.include("emailsvc.api")`` adds everything the web process serves; it needs the
Assembly in ``registry.emailsvc`` (``emailsvc.assembly``'s includeme puts it there).
"""

import logging

from pyramid.tweens import EXCVIEW

from .auth import APIKeySecurityPolicy

log = logging.getLogger(__name__)


def includeme(config):
    """Cornice, the security policy, error views, request ids, then each endpoint."""
    assembly = config.registry.emailsvc
    config.include("cornice")
    # Lets views declare response_schemas (used by /openapi.json and /spore).
    config.include("cornice_swagger")
    # Cornice registers default error views; commit them so that ours (.errors) replace them.
    config.commit()
    required = assembly.settings["emailsvc.require_api_key"]
    config.set_security_policy(APIKeySecurityPolicy(required, assembly.keyring))
    # Request schemas bound to the settings, built on first use (validators.bound_schema).
    config.registry.emailsvc_bound_schemas = {}
    _log_authentication(required, assembly.keyring)
    if not assembly.settings["emailsvc.unsubscribe.secret"]:
        log.warning(
            "emailsvc.unsubscribe.secret is empty: unsubscribe links use a secret generated "
            "and kept in Redis, for development; set EMAILSVC_UNSUBSCRIBE_SECRET in production"
        )
    # Outermost, so that the request id and the log line cover error views too.
    config.add_tween("emailsvc.api.request_context.request_context_tween_factory", over=EXCVIEW)
    config.include(".errors")
    config.include(".health")
    # Before .email_service: the route of /email/{task_id} would take /email/render.
    config.include(".render_service")
    config.include(".email_service")
    config.include(".suppression_service")
    config.include(".unsubscribe_service")
    config.include(".spore")
    config.include(".openapi")
    # Pages for people: the index at / and Swagger UI at /docs.
    config.include(".docs")


def _log_authentication(required, keyring):
    # Operators must see at start-up whether anyone who reaches the port can send mail.
    if not required:
        log.warning(
            "emailsvc.require_api_key is off: the service runs open, any caller can send email"
        )
    elif not keyring.entries:
        log.warning("emailsvc.api_keys is empty: every /email request will get 401")
    else:
        log.info("API keys required; clients: %s", ", ".join(keyring.clients))
