"""The worker: one task per job, one SMTP connection, the template compiled per recipient."""

import os
from email.utils import formatdate

from flask import current_app
from flask_mail import Message
from jinja2 import Template

from . import create_app, mail, make_celery

flask_app = create_app()
celery = make_celery(flask_app)

TEMPLATES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "templates")


@celery.task
def send_email(data):
    """Send ``data["content"]`` through ``templates/<template>.eml`` to every recipient."""
    sender = current_app.config["MAIL_DEFAULT_SENDER"]
    with mail.connect() as conn:
        for recipient in data["recipients"]:
            with open(os.path.join(TEMPLATES, data["template"] + ".eml")) as handle:
                template = Template(handle.read())
            body = template.render(
                **{
                    "date": formatdate(),
                    "from": sender,
                    "to": recipient,
                    "subject": data["subject"],
                    "content": data["content"],
                }
            )
            message = Message(recipients=[recipient], body=body, subject=data["subject"])
            conn.send(message)
    return len(data["recipients"])
