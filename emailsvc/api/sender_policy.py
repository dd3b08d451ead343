"""Which From addresses a client may choose: by default only ``emailsvc.sender``.

``emailsvc.senders.<client>`` lists (whitespace-separated) the domains whose addresses
that client may put in a job's optional ``from`` field. Without it, a job naming any
``from`` is refused: the service must never send as whoever a request says.
"""

from pyramid.httpexceptions import HTTPForbidden

from .errors import error_response


def allowed_sender(request, **kwargs):
    """Cornice validator: a job's ``from`` must be in a domain its client may send from."""
    if request.errors:
        return
    sender = request.validated["body"].get("from")
    if sender is None:
        return
    domain = sender.rpartition("@")[2].lower()
    allowed = request.registry.emailsvc.settings.senders_for(request.identity)
    if domain not in allowed:
        raise error_response(
            HTTPForbidden,
            "body",
            "from",
            f"This API key may not send from {domain!r}; leave 'from' out to use the "
            "service's sender",
        )
