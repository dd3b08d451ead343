"""How the Celery app is configured for each broker (nothing here connects to one)."""

import pytest

from emailsvc.jobs.tasks import broker_url, configure_celery, new_celery_app
from emailsvc.settings import load


def configured(**values):
    """A Celery app configured from settings ``values`` (short names), never connected."""
    ini = {"emailsvc.redis_url": "redis://redis:6379/0", "emailsvc.queue": "mail"}
    ini.update({f"emailsvc.{name}": value for name, value in values.items()})
    app = new_celery_app()
    configure_celery(app, load(ini, environ={}), assembly=object())
    return app


def test_the_job_stores_redis_is_the_broker_by_default_with_our_key_prefix():
    conf = configured(redis_prefix="shop:").conf
    assert conf.broker_url == "redis://redis:6379/0"
    options = conf.broker_transport_options
    assert options == {"visibility_timeout": 3600, "global_keyprefix": "shop:"}


def test_rabbitmq_gets_a_quorum_queue_publisher_confirms_and_no_redis_options():
    app = configured(broker_url="amqp://mail:secret@rabbit:5672/mail", broker_timeout_seconds="2")
    conf = app.conf
    assert conf.broker_url == "amqp://mail:secret@rabbit:5672/mail"
    # Confirms only: a Redis key prefix or visibility timeout means nothing to RabbitMQ.
    assert conf.broker_transport_options == {"confirm_publish": True}
    assert conf.broker_connection_timeout == 2
    [queue] = conf.task_queues
    assert queue.name == "mail" and queue.durable and not queue.auto_delete
    assert queue.queue_arguments == {"x-queue-type": "quorum"}
    # A topic exchange, so that countdowns wait in RabbitMQ (native delayed delivery).
    exchange = queue.exchange
    assert (exchange.name, exchange.type, queue.routing_key) == ("mail", "topic", "mail")
    assert app.publish_options == {"confirm_timeout": 2}
    assert app.amqp.router.route({}, "emailsvc.deliver_chunk")["queue"] is queue


def test_a_redis_broker_has_no_publish_options():
    assert configured().publish_options == {}


def test_redis_through_sentinel_becomes_kombus_sentinel_transport():
    conf = configured(
        redis_url="redis+sentinel://:p%40ss@10.0.0.1:26379,10.0.0.2/mymaster/3",
        redis_timeout_seconds="2",
    ).conf
    assert conf.broker_url == (
        "sentinel://:p%40ss@10.0.0.1:26379/3;sentinel://:p%40ss@10.0.0.2:26379/3"
    )
    options = conf.broker_transport_options
    assert options["master_name"] == "mymaster"
    assert options["global_keyprefix"] == "emailsvc:"
    assert options["socket_timeout"] == options["socket_connect_timeout"] == 2
    assert options["sentinel_kwargs"] == {"socket_timeout": 2, "socket_connect_timeout": 2}


def test_a_broker_of_its_own_may_be_another_redis():
    conf = configured(broker_url="redis+sentinel://sentinel/queues").conf
    assert conf.broker_url == "sentinel://sentinel:26379/0"
    assert conf.broker_transport_options["master_name"] == "queues"


@pytest.mark.parametrize(
    "url, expected",
    [
        ("redis://redis:6379/0", "redis://redis:6379/0"),
        ("unix:///run/redis.sock", "redis+socket:///run/redis.sock"),
    ],
)
def test_redis_urls_are_translated_for_kombu(url, expected):
    assert broker_url(url) == expected
