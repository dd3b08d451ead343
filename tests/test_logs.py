"""The JSON log format: one object per line, the context's ids, tracebacks kept inside."""

import json
import logging

from emailsvc.logs import ContextFormatter, JSONFormatter, log_context, use_format


def record(message="job %s done", args=("abc",), exc_info=None, **extra):
    rec = logging.LogRecord("emailsvc.test", logging.INFO, __file__, 1, message, args, exc_info)
    rec.__dict__.update(extra)
    return rec


def test_a_json_line_has_time_level_logger_message_and_the_context_ids():
    with log_context(request="r-1", job="j-1"):
        line = JSONFormatter().format(record())
    document = json.loads(line)
    assert document["level"] == "INFO" and document["logger"] == "emailsvc.test"
    assert document["message"] == "job abc done"
    assert document["request_id"] == "r-1" and document["job_id"] == "j-1"
    assert document["time"].endswith("+00:00")


def test_ids_outside_any_context_are_left_out_and_a_record_s_own_win():
    assert "request_id" not in json.loads(JSONFormatter().format(record()))
    with log_context(request="r-1"):
        line = JSONFormatter().format(record(request_id="r-own"))
    assert json.loads(line)["request_id"] == "r-own"


def test_a_traceback_stays_inside_the_one_line():
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        import sys

        line = JSONFormatter().format(record(exc_info=sys.exc_info()))
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exc_info"]


def test_use_format_json_swaps_the_formatter_of_every_handler_and_text_keeps_it():
    logger = logging.getLogger("emailsvc.test.use_format")
    handler = logging.StreamHandler()
    handler.setFormatter(ContextFormatter("%(message)s"))
    logger.addHandler(handler)
    try:
        use_format("text")
        assert isinstance(handler.formatter, ContextFormatter)
        use_format("json")
        assert isinstance(handler.formatter, JSONFormatter)
    finally:
        logger.removeHandler(handler)
