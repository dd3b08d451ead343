"""schemathesis against the live service's own OpenAPI description, with its checks.

The service runs under waitress with a real worker, real Redis and an SMTP server, with
API keys on. The run is bounded (a fixed seed, ``FUZZ_EXAMPLES`` cases per operation);
the longer run is in docs/SECURITY.md.
"""

import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from emailsvc.api.auth import hash_key

API_KEY = "fuzz-key-0123456789abcdef"
SEED = 20261121
FUZZ_EXAMPLES = int(os.environ.get("EMAILSVC_FUZZ_EXAMPLES", "200"))


@pytest.fixture
def live(settings, start_web, start_worker):
    settings.update(
        {
            "emailsvc.require_api_key": "true",
            "emailsvc.api_keys": f"fuzz:{hash_key(API_KEY)}",
            # The fuzzer sends hundreds of jobs a minute; the limits are not under test here.
            "emailsvc.limit.requests_per_minute": "0",
            "emailsvc.limit.recipients_per_hour": "0",
            "emailsvc.max_recipients": "100",
        }
    )
    service = start_web()
    start_worker(concurrency=2, ini=service.ini)
    return service


def schemathesis(location, base_url, *extra):
    """Run the schemathesis CLI; return its exit code and output."""
    command = [os.path.join(os.path.dirname(sys.executable), "schemathesis"), "run", location]
    command += ["--url", base_url, "--checks", "all", "--seed", str(SEED)]
    # Every check but one: Swagger 2.0 cannot say "an address or an object", nor
    # email-validator's rules (special-use domains such as .test are refused), so requests
    # that fit the description may still be rightly refused with 400.
    command += ["--exclude-checks", "positive_data_acceptance"]
    command += ["--max-examples", str(FUZZ_EXAMPLES), "--workers", "1", "--no-color"]
    command += ["--header", f"Authorization: Bearer {API_KEY}", *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    return done.returncode, done.stdout + done.stderr


def test_fuzzing_the_openapi_description_finds_no_error(live):
    try:
        urllib.request.urlopen(live.url + "/openapi.json", timeout=10)  # noqa: S310
    except urllib.error.HTTPError as exc:
        pytest.fail(
            f"GET /openapi.json answered {exc.code}: the service must publish its OpenAPI "
            "description (cornice_swagger) for the fuzzer to run against it"
        )
    code, output = schemathesis(live.url + "/openapi.json", live.url)
    assert code == 0, output
