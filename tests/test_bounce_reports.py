"""Reading DSNs (RFC 3464) and ARF reports (RFC 5965): only their machine-readable parts."""

import base64

from emailsvc.bounces.reports import parse_report

HEAD = "From: MAILER-DAEMON@mx.example.net\r\nMIME-Version: 1.0\r\n"


def report(report_type, part_type, body, encoding=None):
    cte = f"Content-Transfer-Encoding: {encoding}\r\n" if encoding else ""
    return (
        HEAD + f'Content-Type: multipart/report; report-type={report_type}; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nA report.\r\n"
        f"--b\r\nContent-Type: {part_type}\r\n{cte}\r\n{body}\r\n--b--\r\n"
    ).encode()


FIELDS = (
    "Reporting-MTA: dns; mx.example.net\r\n\r\n"
    "Final-Recipient: rfc822; a@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    "Diagnostic-Code: smtp; 550 5.1.1 unknown\r\n\r\n"
    "Final-Recipient: rfc822;<B@Example.org>\r\nOriginal-Recipient: rfc822; b@example.org\r\n"
    "Action: delayed\r\nStatus: 4.2.2 (mailbox full)\r\n"
)


def test_a_dsn_gives_each_recipients_action_status_and_diagnostic():
    parsed = parse_report(report("delivery-status", "message/delivery-status", FIELDS))
    assert parsed.kind == "dsn"
    first, second = parsed.recipients
    assert (first.address, first.action, first.status, first.diagnostic, first.kind) == (
        "a@example.org",
        "failed",
        "5.1.1",
        "550 5.1.1 unknown",
        "hard",
    )
    assert (second.address, second.final, second.status, second.kind) == (
        "b@example.org",
        "b@example.org",
        "4.2.2",
        "soft",
    )


def test_an_encoded_delivery_status_part_is_read_too():
    body = base64.b64encode(FIELDS.encode()).decode()
    parsed = parse_report(report("delivery-status", "message/delivery-status", body, "base64"))
    assert [r.status for r in parsed.recipients] == ["5.1.1", "4.2.2"]


def test_a_success_dsn_is_neither_hard_nor_soft():
    fields = "Reporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822; a@x.org\r\n"
    fields += "Action: delivered\r\nStatus: 2.0.0\r\n"
    (recipient,) = parse_report(
        report("delivery-status", "message/delivery-status", fields)
    ).recipients
    assert recipient.kind == "other"


def test_an_arf_report_is_a_complaint_with_its_feedback_type():
    fields = "Feedback-Type: abuse\r\nUser-Agent: FBL/1.0\r\nVersion: 1\r\n"
    parsed = parse_report(report("feedback-report", "message/feedback-report", fields))
    assert (parsed.kind, parsed.feedback_type) == ("complaint", "abuse")


def test_what_is_no_report_reads_as_none():
    assert parse_report(b"Subject: Out of office\r\n\r\nAway until Monday.\r\n") is None
    assert parse_report(b"\x00\xff garbage") is None
    assert (
        parse_report(report("disposition-notification", "message/disposition-notification", ""))
        is None
    )
    # A delivery-status part without a single usable Status.
    assert (
        parse_report(report("delivery-status", "message/delivery-status", "X: y\r\n\r\nZ: w"))
        is None
    )
    assert parse_report(report("feedback-report", "message/feedback-report", "Version: 1")) is None
