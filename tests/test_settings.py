import re

import pytest

from emailsvc import settings
from emailsvc.cli.settings import main as print_settings

from .harness import ROOT


def test_environment_overrides_ini_which_overrides_defaults():
    merged = settings.load(
        {"emailsvc.smtp.host": "relay.ini", "emailsvc.smtp.port": "2525"},
        environ={"EMAILSVC_SMTP_HOST": "relay.env", "EMAILSVC_CHUNK_SIZE": "7"},
    )
    assert merged["emailsvc.smtp.host"] == "relay.env"
    assert merged["emailsvc.smtp.port"] == 2525
    assert merged["emailsvc.chunk_size"] == 7
    assert merged["emailsvc.max_recipients"] == 10000


def test_values_are_typed_once_at_load():
    merged = settings.load(
        {"emailsvc.smtp.starttls": "Yes", "emailsvc.smtp.timeout_seconds": "2.5"}, environ={}
    )
    assert merged["emailsvc.smtp.starttls"] is True
    assert merged["emailsvc.smtp.timeout_seconds"] == 2.5
    assert merged["emailsvc.api_keys"] == ()
    assert merged["emailsvc.redis_url"] == ""


def test_env_name_turns_dots_into_underscores():
    assert settings.env_name("emailsvc.smtp.timeout_seconds") == "EMAILSVC_SMTP_TIMEOUT_SECONDS"


@pytest.mark.parametrize(
    "name, value",
    [
        ("emailsvc.smtp.starttls", "maybe"),
        ("emailsvc.chunk_size", "ten"),
        ("emailsvc.chunk_size", "0"),
        ("emailsvc.smtp.timeout_seconds", "-1"),
        ("emailsvc.mail.transport", "pigeon"),
    ],
)
def test_a_bad_value_names_the_setting_and_its_variable(name, value):
    with pytest.raises(settings.SettingsError) as info:
        settings.load({name: value}, environ={})
    message = str(info.value)
    assert name in message and settings.env_name(name) in message and "the ini file" in message


def test_a_bad_value_from_the_environment_says_so():
    with pytest.raises(settings.SettingsError, match=r"\$EMAILSVC_SMTP_PORT"):
        settings.load({}, environ={"EMAILSVC_SMTP_PORT": "twenty-five"})


def test_an_unknown_setting_is_refused_rather_than_ignored():
    with pytest.raises(settings.SettingsError, match="emailsvc.smtp.hots is not a setting"):
        settings.load({"emailsvc.smtp.hots": "relay"}, environ={})


def test_a_secret_is_never_shown_in_an_error():
    with pytest.raises(settings.SettingsError) as info:
        settings.load({"emailsvc.api_keys": "shop:the-key-itself"}, environ={})
    assert "the-key-itself" not in str(info.value)


def test_print_settings_masks_secrets(tmp_path, capsys, monkeypatch):
    ini = tmp_path / "x.ini"
    ini.write_text("[app:main]\nuse = egg:emailsvc\nemailsvc.smtp.password = hunter2\n")
    monkeypatch.setenv("EMAILSVC_SENDER", "ops@example.org")
    assert print_settings([str(ini)]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "emailsvc.smtp.password = ********" in out
    assert "emailsvc.sender = ops@example.org    (EMAILSVC_SENDER)" in out


def test_print_settings_masks_the_password_inside_a_url(tmp_path, capsys, monkeypatch):
    ini = tmp_path / "x.ini"
    ini.write_text("[app:main]\nuse = egg:emailsvc\n")
    monkeypatch.setenv("EMAILSVC_REDIS_URL", "redis://:s3cret-pw@redis:6379/0")
    monkeypatch.setenv("EMAILSVC_BROKER_URL", "amqp://mq:mq-pw@rabbit:5672/vhost")
    assert print_settings([str(ini)]) == 0
    out = capsys.readouterr().out
    assert "s3cret-pw" not in out and "mq-pw" not in out
    assert "emailsvc.redis_url = redis://:****@redis:6379/0" in out
    assert "emailsvc.broker_url = amqp://mq:****@rabbit:5672/vhost" in out


def test_print_settings_reports_a_bad_value_without_a_traceback(tmp_path, capsys):
    ini = tmp_path / "x.ini"
    ini.write_text("[app:main]\nuse = egg:emailsvc\nemailsvc.chunk_size = lots\n")
    assert print_settings([str(ini)]) == 2
    assert "emailsvc.chunk_size (EMAILSVC_CHUNK_SIZE)" in capsys.readouterr().err


def test_the_readme_settings_table_is_the_declaration():
    with open(f"{ROOT}/README.md", encoding="utf-8") as handle:
        readme = handle.read()
    table = re.search(r"^\| setting \| default \| meaning \|\n(?:\|.*\n)+", readme, re.M)
    assert table, "README.md has no settings table"
    assert table.group(0) == settings.markdown_table(), (
        "README's settings table differs from emailsvc/settings.py: "
        "paste the output of 'emailsvc-settings --markdown'"
    )


def test_both_ini_files_load(monkeypatch):
    for name in ("development.ini", "production.ini"):
        assert settings.from_ini(f"{ROOT}/{name}", environ={})["emailsvc.max_recipients"] > 0


def test_a_sentinel_url_is_parsed_once_into_its_sentinels_group_and_db():
    url = settings.load(
        {"emailsvc.redis_url": "redis+sentinel://:s%40cret@10.0.0.1,10.0.0.2:26380/mymaster/2"},
        environ={},
    )["emailsvc.redis_url"]
    # Still the text that was written, as every reader of the setting expects.
    assert url == "redis+sentinel://:s%40cret@10.0.0.1,10.0.0.2:26380/mymaster/2"
    assert url.sentinel == settings.SentinelGroup(
        sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26380)),
        service="mymaster",
        db=2,
        username=None,
        password="s@cret",
    )
    assert settings.load({}, environ={})["emailsvc.redis_url"].sentinel is None


@pytest.mark.parametrize(
    "value, reason",
    [
        ("http://redis:6379/0", "must be a redis://"),
        ("redis://", "must name a host"),
        ("redis://redis:99999/0", "port"),
        ("unix://", "socket's path"),
        ("redis+sentinel://10.0.0.1:26379", "group's name"),
        ("redis+sentinel://10.0.0.1/mymaster/zero", "db"),
        ("redis+sentinel:///mymaster", "at least one sentinel"),
        ("redis+sentinel://10.0.0.1/mymaster?ssl=1", "no query"),
    ],
)
def test_a_bad_redis_url_stops_start_up_naming_the_setting(value, reason):
    with pytest.raises(settings.SettingsError, match="emailsvc.redis_url") as info:
        settings.load({"emailsvc.redis_url": value}, environ={})
    assert reason in str(info.value)


def test_the_broker_is_rabbitmq_another_redis_or_the_job_stores():
    def broker(value):
        return settings.load({"emailsvc.broker_url": value}, environ={})["emailsvc.broker_url"]

    assert (broker(""), broker("").transport, broker("").redis) == ("", "redis", None)
    rabbit = broker("amqp://u:p@rabbit-1:5672/mail;amqp://u:p@rabbit-2:5672/mail")
    assert (rabbit.transport, rabbit.redis) == ("amqp", None)
    other = broker("redis+sentinel://sentinel:26379/queues")
    assert other.transport == "redis" and other.redis.sentinel.service == "queues"


@pytest.mark.parametrize(
    "value, reason",
    [
        ("kafka://broker:9092", "must be an amqp:// or amqps:// URL"),
        ("amqp://", "amqp://user:password@host"),
        ("amqp://rabbit-1;redis://redis", "amqp://user:password@host"),
        ("amqp://rabbit:70000/", "port"),
        ("redis+sentinel://sentinel", "group's name"),
    ],
)
def test_a_bad_broker_url_stops_start_up_naming_the_setting(value, reason):
    with pytest.raises(settings.SettingsError, match="emailsvc.broker_url") as info:
        settings.load({"emailsvc.broker_url": value}, environ={})
    assert reason in str(info.value)


def test_a_password_in_a_url_is_masked_in_the_error():
    with pytest.raises(settings.SettingsError) as info:
        settings.load({"emailsvc.broker_url": "amqp://mail:hunter2@rabbit:99999/"}, environ={})
    assert "hunter2" not in str(info.value) and "amqp://mail:****@rabbit" in str(info.value)


def test_a_value_replaced_as_text_is_typed_like_one_from_the_ini():
    replaced = settings.load({}, environ={}).replace(
        redis_url="redis+sentinel://127.0.0.1/mymaster", chunk_size="7"
    )
    assert replaced["emailsvc.redis_url"].sentinel.service == "mymaster"
    assert replaced["emailsvc.chunk_size"] == 7
