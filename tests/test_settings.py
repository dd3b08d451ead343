import pytest

from emailsvc import settings


def test_environment_overrides_ini_which_overrides_defaults():
    merged = settings.load(
        {"emailsvc.smtp.host": "relay.ini", "emailsvc.smtp.port": "2525"},
        environ={"EMAILSVC_SMTP_HOST": "relay.env", "EMAILSVC_CHUNK_SIZE": "7"},
    )
    assert merged["emailsvc.smtp.host"] == "relay.env"
    assert merged["emailsvc.smtp.port"] == "2525"
    assert merged["emailsvc.chunk_size"] == "7"
    assert merged["emailsvc.max_recipients"] == settings.DEFAULTS["emailsvc.max_recipients"]


def test_env_name_turns_dots_into_underscores():
    assert settings.env_name("emailsvc.smtp.timeout_seconds") == "EMAILSVC_SMTP_TIMEOUT_SECONDS"


@pytest.mark.parametrize("value, expected", [("true", True), ("Yes", True), ("0", False)])
def test_booleans_read_the_usual_spellings(value, expected):
    assert settings.as_bool({"k": value}, "k") is expected


@pytest.mark.parametrize(
    "reader, value",
    [(settings.as_bool, "maybe"), (settings.as_int, "ten"), (settings.as_float, "-1")],
)
def test_bad_values_are_reported_with_the_setting_name(reader, value):
    with pytest.raises(ValueError, match="emailsvc.x"):
        reader({"emailsvc.x": value}, "emailsvc.x")


def test_print_settings_masks_secrets(tmp_path, capsys, monkeypatch):
    ini = tmp_path / "x.ini"
    ini.write_text("[app:main]\nuse = egg:emailsvc\nemailsvc.smtp.password = hunter2\n")
    monkeypatch.setenv("EMAILSVC_SENDER", "ops@example.org")
    assert settings.print_settings([str(ini)]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "emailsvc.smtp.password = ********" in out
    assert "emailsvc.sender = ops@example.org    (EMAILSVC_SENDER)" in out
