"""``POST /api/email/``: check every address against a regex, publish one task."""

import re

from flask_restx import Namespace, Resource, abort, fields

ns = Namespace("email", description="Send emails")

EMAIL = re.compile(r"^[a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+$")

email_request = ns.model(
    "Email",
    {
        "recipients": fields.List(fields.String, required=True),
        "subject": fields.String(required=True),
        "content": fields.String(required=True),
        "template": fields.String(required=True),
    },
)


@ns.route("/")
class Email(Resource):
    @ns.expect(email_request, validate=True)
    def post(self):
        """Queue one task that sends the email to every recipient."""
        from .tasks import send_email

        data = ns.payload
        for recipient in data["recipients"]:
            if not EMAIL.match(recipient):
                abort(400, f"Invalid email address: {recipient}")
        task = send_email.apply_async(args=[data])
        return {"id": task.id}
