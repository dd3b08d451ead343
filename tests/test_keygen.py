"""emailsvc-keygen: a new key, printed once, and the entry that configures it."""

import json

import webtest

from emailsvc import main
from emailsvc.api.auth import hash_key
from emailsvc.cli.keygen import main as keygen
from emailsvc.settings import api_key_entries


def test_keygen_prints_a_key_and_its_hashed_entry(capsys):
    assert keygen(["shop"]) == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    key, entry = lines[1], lines[3]
    assert len(key) >= 40
    assert api_key_entries(entry) == (("shop", hash_key(key)),)
    assert key not in entry


def test_keygen_makes_a_new_key_each_time(capsys):
    keygen(["shop"])
    keygen(["shop"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] != lines[5]


def test_keygen_refuses_bad_client_names(capsys):
    assert keygen(["Shop Front"]) == 2
    assert keygen([]) == 2
    assert "usage" in capsys.readouterr().err


def test_the_printed_entry_lets_the_printed_key_in(settings, capsys):
    keygen(["shop"])
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    values = {"emailsvc.require_api_key": "true", "emailsvc.api_keys": lines[3]}
    app = webtest.TestApp(main({}, **dict(settings, **values)))
    body = json.dumps({"recipients": ["a@example.org"], "subject": "s", "content": "c"})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {lines[1]}"}
    app.post("/email", body, headers=headers, status=202)


def test_keygen_env_prints_only_the_env_line_on_stdout_and_the_key_on_stderr(settings, capsys):
    assert keygen(["--env", "trial"]) == 0
    captured = capsys.readouterr()
    [line] = captured.out.splitlines()
    name, _, entry = line.partition("=")
    assert name == "EMAILSVC_API_KEYS"
    key = captured.err.splitlines()[1].strip()
    assert api_key_entries(entry) == (("trial", hash_key(key)),)
    assert key not in captured.out
