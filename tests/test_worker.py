"""The worker entry point: ``celery -A emailsvc.worker worker --ini FILE``."""

import subprocess
import sys

from .harness import ROOT, write_ini


def test_the_worker_takes_its_configuration_from_the_ini_before_its_own_options(app, start_worker):
    # worker_prefetch_multiplier = 1 reaches the worker: each process holds one chunk.
    start_worker(concurrency=2)
    stats = app.app.registry.emailsvc.celery.control.inspect(timeout=5).stats() or {}
    assert stats, "the worker did not answer"
    assert [s["prefetch_count"] for s in stats.values()] == [2]


def test_a_bad_setting_stops_the_worker_with_a_message_naming_it(settings, tmp_path):
    ini = write_ini(tmp_path / "bad.ini", dict(settings, **{"emailsvc.chunk_size": "lots"}))
    command = [sys.executable, "-m", "celery", "-A", "emailsvc.worker", "worker", "--ini"]
    result = subprocess.run(
        [*command, str(ini)], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode != 0
    assert "emailsvc.chunk_size (EMAILSVC_CHUNK_SIZE)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_dkim_key_that_cannot_be_read_stops_the_worker_with_a_message_naming_it(
    settings, tmp_path
):
    keys = {"emailsvc.dkim.keys": f"example.com:s1:{tmp_path / 'missing.pem'}"}
    ini = write_ini(tmp_path / "bad.ini", dict(settings, **keys))
    command = [sys.executable, "-m", "celery", "-A", "emailsvc.worker", "worker", "--ini"]
    result = subprocess.run(
        [*command, str(ini)], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode != 0
    assert "the key of example.com (selector s1): cannot read" in result.stderr
    assert "Traceback" not in result.stderr
