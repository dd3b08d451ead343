"""docker/: the compose file parses, and runs the commands the functional tests run."""

import re

from emailsvc.settings import from_ini, load

from .harness import NGINX_TEMPLATE, ROOT, compose, compose_command

WEB = ["pserve", "production.ini"]
WORKER = ["celery", "-A", "emailsvc.worker", "worker", "--ini", "production.ini"]


def test_compose_has_the_five_services_with_their_ports_and_flower_on_demand():
    services = compose()["services"]
    assert set(services) == {"nginx", "web", "worker", "redis", "mailpit", "flower", "bounces"}
    # Flower starts only with --profile monitoring, and listens on this machine only.
    assert services["flower"]["profiles"] == ["monitoring"]
    assert services["flower"]["ports"] == ["127.0.0.1:5555:5555"]
    assert services["flower"]["command"][:4] == ["celery", "-A", "emailsvc.worker", "flower"]
    assert services["nginx"]["ports"] == ["80:80"]
    assert services["mailpit"]["ports"] == ["8025:8025"]
    assert "1025" in services["mailpit"]["expose"]
    # Scalable with --scale worker=N: no fixed name and no published port.
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]


def test_the_bounce_receiver_runs_on_demand_from_the_same_image_and_settings():
    services = compose()["services"]
    bounces = services["bounces"]
    assert bounces["profiles"] == ["bounces"]
    assert bounces["command"] == ["emailsvc-bounces", "production.ini"]
    assert bounces["image"] == services["web"]["image"]
    environment = dict(
        bounces["environment"],
        EMAILSVC_API_KEYS="",
        EMAILSVC_PUBLIC_URL="",
        EMAILSVC_UNSUBSCRIBE_SECRET="",
        EMAILSVC_BOUNCE_DOMAIN="bounces.example.org",
    )
    settings = from_ini(f"{ROOT}/production.ini", environment)
    assert (settings["emailsvc.bounces.host"], settings["emailsvc.bounces.port"]) == (
        "0.0.0.0",
        2525,
    )
    assert bounces["ports"] == ["25:2525"]
    assert (
        f"bounces-dead-letter:{settings['emailsvc.bounces.dead_letter_dir']}"
        in (bounces["volumes"])
    )
    # Web and worker get the bounce domain too: their envelope senders are the VERP ones.
    for name in ("web", "worker"):
        assert "EMAILSVC_BOUNCE_DOMAIN" in services[name]["environment"]


def test_web_and_worker_run_the_documented_commands_from_one_image():
    # The functional tests run compose_command("web") and compose_command("worker").
    assert compose_command("web") == WEB
    assert compose_command("worker") == WORKER
    services = compose()["services"]
    assert services["web"]["image"] == services["worker"]["image"]


def test_redis_keeps_the_queue_across_restarts_and_never_evicts_it():
    redis = compose()["services"]["redis"]
    command = " ".join(redis["command"])
    for flag in ("--appendonly yes", "--appendfsync always", "--maxmemory-policy noeviction"):
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


def test_every_service_restarts_and_web_and_worker_get_signals_and_health_checks():
    services = compose()["services"]
    assert {name: s.get("restart") for name, s in services.items()} == dict.fromkeys(
        services, "unless-stopped"
    )
    for name in ("web", "worker"):
        assert services[name]["init"] is True
        assert services[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
    # pserve finishes its requests in flight within 5 s of SIGTERM: docker waits longer.
    assert int(services["web"]["stop_grace_period"].rstrip("s")) > 10
    # Task events on, for Flower (emailsvc.worker.task_events).
    assert services["worker"]["environment"]["EMAILSVC_WORKER_TASK_EVENTS"] == "true"


def test_metrics_are_counted_per_container_and_the_workers_export_theirs():
    services = compose()["services"]
    # The API keys and the public URL come from docker/.env, unset here.
    # What docker/.env fills in, empty.
    from_env = ("EMAILSVC_API_KEYS", "EMAILSVC_PUBLIC_URL", "EMAILSVC_BOUNCE_DOMAIN")
    worker = dict(services["worker"]["environment"], **dict.fromkeys(from_env, ""))
    environment = load({}, worker)
    folder = environment["emailsvc.metrics.dir"]
    for name in ("web", "worker"):
        assert any(mount.startswith(folder + ":") for mount in services[name]["tmpfs"])
    port = environment["emailsvc.metrics.worker_port"]
    assert str(port) in services["worker"]["expose"]
    # nginx forwards the client's address: only this network may scrape the web process.
    assert environment["emailsvc.metrics.allow"]


def test_the_api_keys_come_from_an_env_file_that_is_never_committed():
    environment = compose()["services"]["web"]["environment"]
    assert environment["EMAILSVC_API_KEYS"] == "${EMAILSVC_API_KEYS:-}"
    with open(f"{ROOT}/.gitignore", encoding="utf-8") as handle:
        assert "docker/.env" in handle.read().split()
    with open(f"{ROOT}/docker/env.example", encoding="utf-8") as handle:
        example = handle.read()
    # A placeholder, not a usable entry: no 64-hex-digit digest is committed.
    assert "EMAILSVC_API_KEYS=trial:<" in example
    assert not re.search(r"[0-9a-f]{64}", example)


def overlay(name):
    """A compose file that goes on top of docker-compose.yml, checked to fit it."""
    base, extra = compose(), compose(name)
    networks = set(base["networks"])
    for service, definition in extra["services"].items():
        if service in base["services"]:
            # Only what the overlay means to change: environment and start order.
            assert set(definition) <= {"environment", "depends_on"}, service
        else:
            assert set(definition["networks"]) <= networks, service
        for needed in definition.get("depends_on", []):
            assert needed in base["services"] or needed in extra["services"], needed
    return extra


def test_the_rabbitmq_overlay_moves_the_queue_to_a_rabbitmq_of_its_own():
    services = overlay("docker-compose.rabbitmq.yml")["services"]
    for name in ("web", "worker"):
        url = load({}, environ=services[name]["environment"])["emailsvc.broker_url"]
        assert url.transport == "amqp" and "@rabbitmq:5672/" in url
    rabbitmq = services["rabbitmq"]
    user, password, vhost = (
        rabbitmq["environment"][f"RABBITMQ_DEFAULT_{key}"] for key in ("USER", "PASS", "VHOST")
    )
    assert url.endswith(f"//{user}:{password}@rabbitmq:5672/{vhost}")
    # Its data outlives the container, under a fixed node name.
    assert rabbitmq["hostname"] == "rabbitmq"
    assert any(volume.endswith(":/var/lib/rabbitmq") for volume in rabbitmq["volumes"])


def test_the_sentinel_overlay_gives_redis_a_replica_and_three_sentinels_to_fail_over():
    services = overlay("docker-compose.sentinel.yml")["services"]
    sentinels = [name for name in services if name.startswith("sentinel-")]
    assert len(sentinels) == 3
    for name in ("web", "worker"):
        group = load({}, environ=services[name]["environment"])["emailsvc.redis_url"].sentinel
        assert sorted(group.sentinels) == [(name, 26379) for name in sorted(sentinels)]
        assert set(sentinels) <= set(services[name]["depends_on"])
    for name in sentinels:
        script = services[name]["command"][-1]
        # The primary is the redis service; two sentinels of three must agree it is down.
        assert f"sentinel monitor {group.service} redis 6379 2" in script
        assert script.endswith("--sentinel")
    # The replica keeps the queue as the primary does, so that promoting it loses nothing.
    replica = " ".join(services["redis-replica"]["command"])
    assert replica.endswith("--replicaof redis 6379")
    for flag in ("--appendonly yes", "--appendfsync always", "--maxmemory-policy noeviction"):
        assert flag in replica
