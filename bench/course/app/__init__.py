"""The course's email microservice, rebuilt as a reference for bench/: Flask + flask-restx
for the API, Celery + Redis for the one task per job, Flask-Mail for SMTP."""

import logging
import os
from logging.handlers import RotatingFileHandler

from celery import Celery
from flask import Blueprint, Flask
from flask_mail import Mail
from flask_restx import Api

mail = Mail()

SETTINGS = {
    "MAIL_SERVER": "localhost",
    "MAIL_PORT": "25",
    "MAIL_USE_TLS": "false",
    "MAIL_USE_SSL": "false",
    "MAIL_USERNAME": "",
    "MAIL_PASSWORD": "",
    "MAIL_DEFAULT_SENDER": "noreply@example.org",
    "CELERY_BROKER_URL": "redis://localhost",
    "CELERY_RESULT_BACKEND": "redis://localhost",
    # Not in the course: lets bench/ keep its keys apart from everything else in Redis.
    "CELERY_KEY_PREFIX": "",
}


def _value(raw):
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    return int(raw) if raw.isdigit() else raw or None


def _configure_logging(app):
    path = os.environ.get("LOG_FILE")
    if not path:
        return
    handler = RotatingFileHandler(
        path,
        maxBytes=int(os.environ.get("LOG_MAX_BYTES", "10485760")),
        backupCount=int(os.environ.get("LOG_BACKUP_COUNT", "5")),
    )
    handler.setLevel(os.environ.get("LOG_LEVEL", "INFO"))
    app.logger.addHandler(handler)
    logging.getLogger("celery").addHandler(handler)


def create_app():
    """The Flask app, configured from the defaults above and same-named environment variables."""
    app = Flask(__name__)
    for name, default in SETTINGS.items():
        app.config[name] = _value(os.environ.get(name, default))
    mail.init_app(app)
    _configure_logging(app)

    from .api import ns

    blueprint = Blueprint("api", __name__, url_prefix="/api")
    api = Api(blueprint, title="Email service")
    api.add_namespace(ns)
    app.register_blueprint(blueprint)
    return app


def make_celery(app):
    """A Celery app whose tasks run inside the Flask app's context (the course's pattern)."""
    celery = Celery(
        app.import_name,
        broker=app.config["CELERY_BROKER_URL"],
        backend=app.config["CELERY_RESULT_BACKEND"],
    )
    prefix = app.config["CELERY_KEY_PREFIX"]
    if prefix:
        options = {"global_keyprefix": prefix}
        celery.conf.broker_transport_options = options
        celery.conf.result_backend_transport_options = options

    class ContextTask(celery.Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery.Task = ContextTask
    return celery
