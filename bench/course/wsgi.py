"""The WSGI entry point uwsgi serves; importing the tasks binds the Celery app to Flask."""

from app.tasks import flask_app as application  # noqa: F401
