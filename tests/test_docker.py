"""docker/: the compose file parses, and runs the commands the functional tests run."""

import re

from emailsvc.settings import from_ini

from .harness import NGINX_TEMPLATE, ROOT, compose, compose_command

WEB = ["pserve", "production.ini"]
WORKER = ["celery", "-A", "emailsvc.worker", "worker", "--ini", "production.ini"]


def test_compose_has_the_five_services_with_their_ports():
    services = compose()["services"]
    assert set(services) == {"nginx", "web", "worker", "redis", "mailpit"}
    assert services["nginx"]["ports"] == ["80:80"]
    assert services["mailpit"]["ports"] == ["8025:8025"]
    assert "1025" in services["mailpit"]["expose"]
    # Scalable with --scale worker=N: no fixed name and no published port.
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]


def test_web_and_worker_run_the_documented_commands_from_one_image():
    # The functional tests run compose_command("web") and compose_command("worker").
    assert compose_command("web") == WEB
    assert compose_command("worker") == WORKER
    services = compose()["services"]
    assert services["web"]["image"] == services["worker"]["image"]


def test_redis_keeps_the_queue_across_restarts_and_never_evicts_it():
    redis = compose()["services"]["redis"]
    command = " ".join(redis["command"])
    for flag in ("--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"):
        assert flag in command
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_only_nginx_is_trusted_for_forwarded_headers():
    services = compose()["services"]
    nginx_address = services["nginx"]["networks"]["emailsvc"]["ipv4_address"]
    assert services["web"]["environment"]["EMAILSVC_TRUSTED_PROXY"] == nginx_address


def test_nginx_body_limit_matches_the_app_and_posts_are_never_retried():
    with open(NGINX_TEMPLATE, encoding="utf-8") as handle:
        conf = handle.read()
    limit = int(from_ini(f"{ROOT}/production.ini")["emailsvc.max_body_bytes"])
    megabytes = int(re.search(r"client_max_body_size (\d+)m;", conf)[1])
    assert megabytes * 1024 * 1024 == limit
    next_upstream = re.search(r"proxy_next_upstream ([^;]*);", conf)[1]
    assert "non_idempotent" not in next_upstream
    for timeout in ("proxy_connect_timeout", "proxy_read_timeout", "proxy_send_timeout"):
        assert timeout in conf
