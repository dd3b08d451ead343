"""The waitress runner's settings: ini, then EMAILSVC_* variables, then pserve's http_port."""

import http.client

import pytest
from webtest.http import StopableWSGIServer

from emailsvc.server import server_settings

from .harness import free_port

PROXY = {
    "trusted_proxy": "127.0.0.1",
    "trusted_proxy_count": "1",
    "trusted_proxy_headers": "x-forwarded-for x-forwarded-host x-forwarded-proto",
}


def test_environment_sets_address_threads_and_proxy():
    environ = {
        "EMAILSVC_HTTP_HOST": "10.0.0.5",
        "EMAILSVC_HTTP_PORT": "8000",
        "EMAILSVC_HTTP_THREADS": "16",
        "EMAILSVC_TRUSTED_PROXY": "10.0.0.2",
    }
    result = server_settings({}, dict(PROXY, host="0.0.0.0", port="6543"), environ)
    assert result["host"] == "10.0.0.5" and result["port"] == "8000"
    assert result["threads"] == "16" and result["trusted_proxy"] == "10.0.0.2"


def test_http_port_on_the_command_line_wins_over_the_environment():
    result = server_settings({"http_port": "9000"}, {"port": "6543"}, {"EMAILSVC_HTTP_PORT": "1"})
    assert result["port"] == "9000"


def test_an_empty_trusted_proxy_trusts_no_one():
    result = server_settings({}, dict(PROXY), {"EMAILSVC_TRUSTED_PROXY": ""})
    assert not {"trusted_proxy", "trusted_proxy_count", "trusted_proxy_headers"} & set(result)


def _echo_url(environ, start_response):
    from wsgiref.util import application_uri

    body = f"{application_uri(environ)} {environ['REMOTE_ADDR']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


@pytest.mark.parametrize(
    "trusted, expected",
    [
        ("127.0.0.1", "https://mail.example.test/ 192.0.2.7"),
        # Another address is trusted: the same headers from 127.0.0.1 are dropped.
        ("127.0.0.2", "http://127.0.0.1:{port}/ 127.0.0.1"),
    ],
)
def test_forwarded_headers_count_only_from_the_trusted_proxy(trusted, expected):
    port = free_port()
    options = server_settings(
        {}, dict(PROXY, host="127.0.0.1", port=str(port)), {"EMAILSVC_TRUSTED_PROXY": trusted}
    )
    options.pop("host"), options.pop("port")
    server = StopableWSGIServer.create(_echo_url, host="127.0.0.1", port=port, **options)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "mail.example.test",
            "X-Forwarded-For": "192.0.2.7",
        }
        connection.request("GET", "/", headers=headers)
        assert connection.getresponse().read().decode() == expected.format(port=port)
        connection.close()
    finally:
        server.shutdown()
