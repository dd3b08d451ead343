"""The client's suppression list: ``/suppressions`` and ``/suppressions/{email}``.

Each client sees its own list only: another client's entry answers 404 like a missing one.
"""

from cornice import Service
from pyramid.httpexceptions import HTTPConflict, HTTPNotFound

from . import schemas
from .auth import SEND_PERMISSION
from .errors import error_response
from .limits import within_request_limit
from .validators import path_and_query_validator

suppressions = Service(
    name="list_suppressions",
    path="/suppressions",
    description="The client's suppressed addresses, page by page.",
    permission=SEND_PERMISSION,
)
suppression = Service(
    name="suppression",
    path="/suppressions/{email}",
    description="One address of the client's suppression list.",
    permission=SEND_PERMISSION,
)

_COMMON = {
    "400": schemas.Error(description="Invalid address or parameter, named in errors"),
    "401": schemas.Error(description="No API key, or an unknown one"),
    "503": schemas.Unavailable(description="Redis cannot answer; nothing was changed"),
}
LIST_RESPONSES = {"200": schemas.SuppressionPage(description="A page of the list"), **_COMMON}
_LIMITED = {"429": schemas.Unavailable(description="Over this client's request limit")}
ADD_RESPONSES = {
    "200": schemas.SuppressionDocument(description="Already suppressed; the entry stands"),
    "201": schemas.SuppressionDocument(description="Suppressed now, reason manual"),
    **_COMMON,
    **_LIMITED,
}
GET_RESPONSES = {
    "200": schemas.SuppressionDocument(description="The address is suppressed"),
    "404": schemas.Error(description="The address is not on this client's list"),
    **_COMMON,
}
REMOVE_RESPONSES = {
    "200": schemas.SuppressionDocument(description="Removed; the entry that was"),
    "404": schemas.Error(description="The address is not on this client's list"),
    "409": schemas.Error(description="Unsubscribed or complained: only the recipient undoes it"),
    **_COMMON,
    **_LIMITED,
}


def _not_listed(request):
    return error_response(
        HTTPNotFound, "path", "email", "This address is not on the suppression list"
    )


@suppressions.get(
    schema=schemas.SuppressionListRequest,
    validators=(path_and_query_validator,),
    response_schemas=LIST_RESPONSES,
)
def list_suppressions(request):
    """List the client's suppressed addresses in address order, ``limit`` at a time.

    ``reason`` keeps one reason's entries; ``cursor`` (from the previous page) goes on.
    """
    query = request.validated["querystring"]
    entries, cursor = request.registry.emailsvc.suppressions.page(
        request.identity, query.get("reason"), query.get("cursor"), query["limit"]
    )
    return {"suppressions": [entry.document() for entry in entries], "cursor": cursor}


@suppression.put(
    schema=schemas.SuppressionRequest,
    # Changes count as requests against the client's limit (reads do not).
    validators=(path_and_query_validator, within_request_limit),
    response_schemas=ADD_RESPONSES,
    operation_id="add_suppression",
)
def add_suppression(request):
    """Suppress an address (reason ``manual``): no job of this client sends to it.

    An address already suppressed keeps its entry (and its reason).
    """
    store = request.registry.emailsvc.suppressions
    entry, created = store.add(request.identity, request.validated["path"]["email"], "manual")
    request.response.status_code = 201 if created else 200
    return entry.document()


@suppression.get(
    schema=schemas.SuppressionRequest,
    validators=(path_and_query_validator,),
    response_schemas=GET_RESPONSES,
    operation_id="get_suppression",
)
def get_suppression(request):
    """Whether an address is suppressed for this client: its reason, time and job."""
    store = request.registry.emailsvc.suppressions
    entry = store.get(request.identity, request.validated["path"]["email"])
    return _not_listed(request) if entry is None else entry.document()


@suppression.delete(
    schema=schemas.SuppressionRequest,
    validators=(path_and_query_validator, within_request_limit),
    response_schemas=REMOVE_RESPONSES,
    operation_id="remove_suppression",
)
def remove_suppression(request):
    """Remove a ``manual`` or ``bounced`` entry, so that jobs send to the address again.

    Answers the entry that was removed. An unsubscribe or a complaint is the recipient's
    own word: it answers 409 and stays.
    """
    store = request.registry.emailsvc.suppressions
    removed, entry = store.remove(request.identity, request.validated["path"]["email"])
    if entry is None:
        return _not_listed(request)
    if not removed:
        description = f"Suppressed as {entry.reason}: only the recipient can undo it"
        return error_response(HTTPConflict, "path", "email", description)
    return entry.document()


def includeme(config):
    """``/suppressions`` and ``/suppressions/{email}``."""
    config.scan(__name__)
