"""Suppressions and one-click unsubscribe through the app, a real Redis, a real Celery
worker and aiosmtpd: the links the messages carry are the ones that unsubscribe."""

import re
from urllib.parse import urlsplit

from tests.harness import post_job, wait_job_final

ONE_CLICK = {"List-Unsubscribe": "One-Click"}
_URL = re.compile(r"<(https?://[^>]+)>")


def received(smtp_server):
    """``{recipient: message}`` of what the SMTP server received."""
    return {rcpts[0]: msg for _, rcpts, msg in smtp_server.messages}


def unsubscribe_path(msg):
    [url] = _URL.findall(msg["List-Unsubscribe"])
    return urlsplit(url).path


def test_a_broadcast_link_unsubscribes_and_the_next_job_skips_the_address(
    app, smtp_server, start_worker
):
    start_worker()
    people = ["ana@example.org", "bo@example.org"]
    broadcast = post_job(
        app, {"recipients": people, "subject": "News", "content": "Hi", "stream": "broadcast"}
    )
    transactional = post_job(
        app, {"recipients": ["cy@example.org"], "subject": "Receipt", "content": "Paid"}
    )
    assert wait_job_final(app, broadcast["id"])["status"] == "sent"
    assert wait_job_final(app, transactional["id"])["status"] == "sent"
    messages = received(smtp_server)
    for person in people:
        msg = messages[person]
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["Precedence"] == "bulk"
        assert unsubscribe_path(msg).startswith("/unsubscribe/")
        assert person not in msg["List-Unsubscribe"]
    assert unsubscribe_path(messages["ana@example.org"]) != unsubscribe_path(
        messages["bo@example.org"]
    )
    for name in ("List-Unsubscribe", "List-Unsubscribe-Post", "Precedence"):
        assert name not in messages["cy@example.org"]

    # Ana follows her link: a GET (a link scanner's, or hers) unsubscribes nobody...
    path = unsubscribe_path(messages["ana@example.org"])
    app.get(path, status=200)
    app.get("/suppressions/ana@example.org", status=404)
    # ... an altered link unsubscribes nobody either...
    token = path.rsplit("/", 1)[1]
    altered = path[: -len(token)] + token[::-1]
    app.post(altered, ONE_CLICK, status=404)
    app.get("/suppressions/bo@example.org", status=404)
    # ... and the one-click POST unsubscribes her at once.
    app.post(path, ONE_CLICK, status=200)
    entry = app.get("/suppressions/ana@example.org", status=200).json
    assert (entry["reason"], entry["job_id"]) == ("unsubscribed", broadcast["id"])

    before = len(smtp_server.messages)
    again = post_job(
        app, {"recipients": people, "subject": "More", "content": "Hi", "stream": "broadcast"}
    )
    doc = wait_job_final(app, again["id"])
    assert (doc["status"], doc["sent"], doc["failed"], doc["suppressed"]) == (
        "partially_failed",
        1,
        1,
        1,
    )
    assert doc["errors"] == [
        {"recipient": "ana@example.org", "code": None, "message": "suppressed: unsubscribed"}
    ]
    assert [rcpts for _, rcpts, _ in smtp_server.messages[before:]] == [["bo@example.org"]]


def test_a_suppression_added_after_acceptance_is_honoured_by_the_worker(
    app, smtp_server, start_worker
):
    people = ["ana@example.org", "bo@example.org", "cy@example.org"]
    job = post_job(app, {"recipients": people, "subject": "S", "content": "C"})
    assert job["suppressed"] == 0
    # Accepted, not yet sent (no worker runs): then suppressed.
    app.put("/suppressions/bo@example.org", status=201)
    start_worker()
    doc = wait_job_final(app, job["id"])
    assert (doc["sent"], doc["failed"], doc["suppressed"]) == (2, 1, 1)
    assert doc["errors"] == [
        {"recipient": "bo@example.org", "code": None, "message": "suppressed: manual"}
    ]
    delivered = sorted(r for _, rcpts, _ in smtp_server.messages for r in rcpts)
    assert delivered == ["ana@example.org", "cy@example.org"]
    # Removed, the address is sent to again.
    app.delete("/suppressions/bo@example.org", status=200)
    again = post_job(app, {"recipients": ["bo@example.org"], "subject": "S2", "content": "C"})
    assert wait_job_final(app, again["id"])["status"] == "sent"
