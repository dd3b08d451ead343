"""The performance goals of issue 11, each measured side by side with the course's design.

    .venv/bin/python -m bench.run p1|p2|p3|p4|p5 [--repeat N] [--recipients N]

Every run starts its own processes on loopback (Postfix's smtp-sink, emailsvc's pserve
and Celery workers as production runs them, nginx on the repository's template, the
reference app of bench/course under uwsgi and Celery), keeps its Redis keys under a
prefix of its own on 127.0.0.1:6379, and stops and deletes all of it at the end. Each
goal prints emailsvc's figure, the reference's, and their ratio: the median of the
repetitions, their min and max, and the 1-minute load average around them.
"""

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import psutil
import redis

from emailsvc.api.auth import hash_key
from tests.harness import (
    Process,
    free_port,
    local_command,
    nginx_command,
    render_nginx,
    wait_for,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COURSE = os.path.join(ROOT, "bench", "course")
COURSE_BIN = os.path.join(ROOT, "bench", ".venv-course", "bin")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
API_KEY = "bench-key"
FINAL = {"sent", "partially_failed", "failed", "cancelled"}
RECIPIENTS = 10_000


def recipients(count):
    """``count`` distinct addresses that both services accept."""
    return [f"user{i:05d}@example.net" for i in range(count)]


def job(count):
    """A job body that both APIs accept (the course requires ``template``)."""
    return {
        "recipients": recipients(count),
        "subject": "Benchmark",
        "content": "Hello,\nthis is a benchmark message.\n",
        "template": "default",
    }


def program(name):
    """A Postfix or Debian tool, from PATH or /usr/sbin."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if not found:
        raise SystemExit(f"{name} is not installed (apt-get install postfix wrk nginx)")
    return found


def post(port, path, body, headers=None):
    """POST ``body`` as JSON; return (status, decoded JSON, seconds taken)."""
    payload = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        started = time.perf_counter()
        connection.request("POST", path, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    return response.status, json.loads(raw), elapsed


def get(port, path, headers=None):
    """GET ``path``; return (status, decoded JSON)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


class Bench:
    """The processes and Redis keys of one run; stop() ends every process and deletes the keys."""

    def __init__(self):
        self.redis = redis.Redis.from_url(REDIS_URL)
        self.redis.ping()
        self.directory = tempfile.mkdtemp(prefix="emailsvc-bench-")
        self.prefix = f"bench-{os.getpid()}-{uuid.uuid4().hex[:8]}:"
        self.processes = []
        self.sink_port = None
        #: emailsvc.smtp.connections of the emailsvc workers this run starts.
        self.smtp_connections = 1

    def start(self, name, command, *, env=None, cwd=ROOT):
        """Start ``command`` with its output in ``name``.out under this run's directory."""
        output = os.path.join(self.directory, f"{name}.out")
        process = Process(command, output, env=env, cwd=cwd).start()
        self.processes.append(process)
        return process

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        """Stop every process (children included) and delete this run's keys; delete its
        files too, unless the run failed: then their path is printed, to read the logs."""
        for process in reversed(self.processes):
            process.stop(timeout=15)
        keys = list(self.redis.scan_iter(match=self.prefix + "*", count=1000))
        for start in range(0, len(keys), 1000):
            self.redis.delete(*keys[start : start + 1000])
        if kind is None:
            shutil.rmtree(self.directory, ignore_errors=True)
        else:
            print(f"the processes' output is in {self.directory}", file=sys.stderr)

    # The SMTP sink and the wire's limit.

    def sink(self):
        """Postfix's smtp-sink on a loopback port (it drops to the postfix user as root)."""
        self.sink_port = free_port()
        command = [program("smtp-sink"), f"127.0.0.1:{self.sink_port}", "1024"]
        if os.geteuid() == 0:
            command[1:1] = ["-u", "postfix"]
        process = self.start("smtp-sink", command)
        wait_for(lambda: port_open(self.sink_port), 10)
        return process

    def wire_limit(self, count=RECIPIENTS):
        """msgs/s of ``smtp-source -d -s 10`` sending ``count`` messages into the sink."""
        command = [program("smtp-source"), "-d", "-s", "10", "-m", str(count)]
        command += ["-f", "noreply@example.org", "-t", "user@example.net"]
        started = time.perf_counter()
        subprocess.run([*command, f"127.0.0.1:{self.sink_port}"], check=True, capture_output=True)
        return count / (time.perf_counter() - started)

    def slow_relay(self, delay_ms):
        """bench/relay.py: an SMTP relay answering each DATA after ``delay_ms``."""
        self.sink_port = free_port()
        command = [sys.executable, "-m", "bench.relay", str(self.sink_port), str(delay_ms)]
        relay = self.start("relay", command)
        relay.wait_for_output("listening", timeout=30)

    # emailsvc, started as production starts it.

    def emailsvc_env(self):
        """production.ini's settings pointed at this run's Redis prefix and sink."""
        return {
            "EMAILSVC_REDIS_URL": REDIS_URL,
            "EMAILSVC_REDIS_PREFIX": self.prefix + "svc:",
            "EMAILSVC_QUEUE": self.prefix + "svc:queue",
            "EMAILSVC_SMTP_HOST": "127.0.0.1",
            "EMAILSVC_SMTP_PORT": str(self.sink_port or 25),
            "EMAILSVC_SMTP_STARTTLS": "false",
            "EMAILSVC_SMTP_CONNECTIONS": str(self.smtp_connections),
            "EMAILSVC_TRUSTED_PROXY": "127.0.0.1",
            "EMAILSVC_HTTP_HOST": "127.0.0.1",
            "EMAILSVC_API_KEYS": f"bench:{hash_key(API_KEY)}",
            # The per-client limits would answer 429 long before any figure is reached.
            "EMAILSVC_LIMIT_REQUESTS_PER_MINUTE": "0",
            "EMAILSVC_LIMIT_RECIPIENTS_PER_HOUR": "0",
        }

    def emailsvc_web(self):
        """``pserve production.ini`` on a free loopback port; returns the port."""
        port = free_port()
        env = dict(self.emailsvc_env(), EMAILSVC_LOG_FILE=os.path.join(self.directory, "web.log"))
        command = local_command(["pserve", "production.ini", f"http_port={port}"])
        web = self.start("emailsvc-web", command, env=env)
        web.wait_for_http(f"http://127.0.0.1:{port}/__lbheartbeat__", timeout=60)
        return port

    def emailsvc_worker(self, concurrency=2):
        """``celery -A emailsvc.worker worker --ini production.ini`` with ``concurrency``."""
        log = os.path.join(self.directory, "worker.log")
        command = local_command(["celery", "-A", "emailsvc.worker", "worker"])
        command += ["--ini", "production.ini", "--concurrency", str(concurrency)]
        command += ["--hostname", f"bench-{uuid.uuid4().hex[:8]}@%h"]
        worker = self.start(
            "emailsvc-worker", command, env=dict(self.emailsvc_env(), EMAILSVC_LOG_FILE=log)
        )
        worker.wait_for_output(" ready.", timeout=120)
        return worker

    def nginx(self, upstream_port):
        """nginx on the repository's template in front of ``upstream_port``; returns its port."""
        directory = os.path.join(self.directory, "nginx")
        os.makedirs(directory)
        port = free_port()
        conf = render_nginx(directory, f"127.0.0.1:{port}", f"127.0.0.1:{upstream_port}")
        self.start("nginx", nginx_command(directory, conf))
        wait_for(lambda: port_open(port), 10)
        return port

    # The course's design (bench/course), in its own virtualenv.

    def course_env(self):
        """The reference app's settings: this run's Redis prefix and sink."""
        return {
            "CELERY_BROKER_URL": REDIS_URL,
            "CELERY_RESULT_BACKEND": REDIS_URL,
            "CELERY_KEY_PREFIX": self.prefix + "course:",
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": str(self.sink_port or 25),
            "MAIL_DEFAULT_SENDER": "noreply@example.org",
            "LOG_FILE": os.path.join(self.directory, "course.log"),
        }

    def course_web(self):
        """The reference app under uwsgi (master, 5 processes); returns the port."""
        if not os.path.exists(os.path.join(COURSE_BIN, "uwsgi")):
            raise SystemExit("the reference app is not installed: make bench-install")
        port = free_port()
        command = [os.path.join(COURSE_BIN, "uwsgi"), "--ini", "uwsgi.ini"]
        command += ["--http-socket", f"127.0.0.1:{port}"]
        self.start("course-web", command, env=self.course_env(), cwd=COURSE)
        wait_for(lambda: port_open(port), 60)
        return port

    def course_worker(self, concurrency=2):
        """``celery -A app.tasks worker`` of the reference app with ``concurrency``."""
        command = [os.path.join(COURSE_BIN, "celery"), "-A", "app.tasks", "worker"]
        command += ["--concurrency", str(concurrency), "-l", "INFO"]
        command += ["--hostname", f"bench-course-{uuid.uuid4().hex[:8]}@%h"]
        worker = self.start("course-worker", command, env=self.course_env(), cwd=COURSE)
        worker.wait_for_output(" ready.", timeout=120)

    def both_delivering(self, concurrency=2):
        """Both services' web and worker, each warmed by a first small job; their web ports."""
        web = self.emailsvc_web()
        self.emailsvc_worker(concurrency=concurrency)
        course = self.course_web()
        self.course_worker(concurrency=concurrency)
        # A first small job each: imports, connections and caches are warm for the figures.
        emailsvc_delivery(web, 10)
        course_delivery(self, course, 10)
        return web, course

    def course_result(self, task_id):
        """The state Celery's Redis backend holds for ``task_id`` (None until it ends)."""
        raw = self.redis.get(f"{self.prefix}course:celery-task-meta-{task_id}")
        return json.loads(raw)["status"] if raw else None


def port_open(port):
    """Something accepts connections on loopback ``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


AUTH = {"Authorization": f"Bearer {API_KEY}"}


def emailsvc_delivery(port, count=RECIPIENTS):
    """msgs/s of one job of ``count`` recipients, from its POST until its status is final."""
    started = time.perf_counter()
    status, body, _ = post(port, "/email", job(count), AUTH)
    assert status == 202, (status, body)
    path = f"/email/{body['id']}"
    while True:
        _, state = get(port, path, AUTH)
        if state["status"] in FINAL:
            break
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    if state["status"] != "sent":
        raise RuntimeError(f"emailsvc's job ended {state['status']}: {state['errors'][:3]}")
    return count / elapsed


def course_delivery(bench, port, count=RECIPIENTS):
    """msgs/s of the reference app's one task for ``count`` recipients, POST to SUCCESS."""
    started = time.perf_counter()
    status, body, _ = post(port, "/api/email/", job(count))
    assert status == 200, (status, body)
    while (state := bench.course_result(body["id"])) is None:
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    if state != "SUCCESS":
        raise RuntimeError(f"the reference app's task ended {state}")
    return count / elapsed


class Figures:
    """Samples of each measure, with the 1-minute load average taken after each sample."""

    def __init__(self):
        self.samples = {}

    def add(self, name, value):
        self.samples.setdefault(name, []).append((value, os.getloadavg()[0]))

    def median(self, name):
        return statistics.median(value for value, _ in self.samples[name])

    def line(self, name, unit, digits=0):
        values = [value for value, _ in self.samples[name]]
        loads = [load for _, load in self.samples[name]]
        return (
            f"  {name:<28} {statistics.median(values):>10,.{digits}f} {unit}"
            f"  [min {min(values):,.{digits}f}, max {max(values):,.{digits}f}; n={len(values)}]"
            f"  load {min(loads):.1f}-{max(loads):.1f}"
        )


def header(title):
    print(f"{title}\n  machine: {os.cpu_count()} CPUs, load now {os.getloadavg()[0]:.1f}")


def p1(repeat, count=RECIPIENTS, connections=1):
    """P1: one 10,000-recipient job, 2 worker processes, into smtp-sink; and the wire's limit."""
    figures = Figures()
    with Bench() as bench:
        bench.smtp_connections = connections
        bench.sink()
        web, course = bench.both_delivering()
        for _ in range(repeat):
            figures.add("emailsvc", emailsvc_delivery(web, count))
            figures.add("course", course_delivery(bench, course, count))
            figures.add("smtp-source -d -s 10", bench.wire_limit(count))
    header(
        f"P1: one job of {count:,} recipients, 2 worker processes x {connections} "
        "connection(s), into smtp-sink (msgs/s)"
    )
    for name in ("emailsvc", "course", "smtp-source -d -s 10"):
        print(figures.line(name, "msgs/s"))
    mine = figures.median("emailsvc")
    print(f"  emailsvc / course: {mine / figures.median('course'):.2f} (goal >= 10)")
    limit = figures.median("smtp-source -d -s 10")
    print(f"  emailsvc / smtp-source: {mine / limit:.3f} (goal >= 0.25)")


def p2(repeat, count=RECIPIENTS):
    """P2: the time of one POST of 10,000 recipients, straight to each web server."""
    figures = Figures()
    with Bench() as bench:
        web = bench.emailsvc_web()
        course = bench.course_web()
        # Warm every web process: uwsgi's five each connect to Redis on their first POST.
        for _ in range(10):
            post(web, "/email", job(10), AUTH)
            post(course, "/api/email/", job(10))
        for _ in range(repeat):
            status, body, elapsed = post(web, "/email", job(count), AUTH)
            assert status == 202, (status, body)
            figures.add("emailsvc (waitress)", elapsed * 1000)
            status, body, elapsed = post(course, "/api/email/", job(count))
            assert status == 200, (status, body)
            figures.add("course (uwsgi x5)", elapsed * 1000)
    header(f"P2: POST of {count:,} recipients, no worker running (ms)")
    for name in ("emailsvc (waitress)", "course (uwsgi x5)"):
        print(figures.line(name, "ms", digits=1))
    ratio = figures.median("emailsvc (waitress)") / figures.median("course (uwsgi x5)")
    print(f"  emailsvc / course: {ratio:.1f}x the time (goal: emailsvc <= 50 ms)")


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{auth}
"""
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(directory, port, path, body, headers, seconds):
    """``wrk -t2 -c10 --latency`` POSTing ``body``; returns (req/s, p99 ms, non-2xx count)."""
    auth = "\n".join(f'wrk.headers["{key}"] = "{value}"' for key, value in headers.items())
    script = os.path.join(directory, f"post-{port}.lua")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write(WRK_SCRIPT.format(body=json.dumps(json.dumps(body)), auth=auth))
    command = [program("wrk"), "-t2", "-c10", f"-d{seconds}s", "--latency", "-s", script]
    result = subprocess.run(
        [*command, f"http://127.0.0.1:{port}{path}"], check=True, capture_output=True, text=True
    )
    out = result.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    value, unit = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if socket_errors:
        print(f"  (wrk on :{port}: socket errors {socket_errors[1]})", file=sys.stderr)
    return rate, float(value) * UNITS[unit], int(errors[1]) if errors else 0


def p3(repeat, count=1, seconds=10):
    """P3: 1-recipient POSTs at 10 connections, emailsvc behind nginx vs the course's uwsgi x5."""
    figures = Figures()
    refused = {"emailsvc": 0, "course": 0}
    with Bench() as bench:
        web = bench.emailsvc_web()
        front = bench.nginx(web)
        course = bench.course_web()
        targets = {
            "emailsvc": (front, "/email", AUTH),
            "course": (course, "/api/email/", {}),
        }
        for port, path, headers in targets.values():
            wrk(bench.directory, port, path, job(1), headers, 2)
        for _ in range(repeat):
            for name, (port, path, headers) in targets.items():
                rate, p99, errors = wrk(bench.directory, port, path, job(count), headers, seconds)
                figures.add(f"{name} req/s", rate)
                figures.add(f"{name} p99", p99)
                refused[name] += errors
    header(f"P3: POST of {count} recipient(s), 10 connections, wrk -t2 -c10 -d{seconds}s")
    print("  emailsvc: nginx -> pserve production.ini; course: uwsgi (master, 5 processes)")
    for name in ("emailsvc req/s", "course req/s"):
        print(figures.line(name, "req/s"))
    for name in ("emailsvc p99", "course p99"):
        print(figures.line(name, "ms", digits=1))
    rate = figures.median("emailsvc req/s") / figures.median("course req/s")
    p99 = figures.median("emailsvc p99") / figures.median("course p99")
    print(f"  emailsvc / course: {rate:.2f} of the req/s (goal >= 2), p99 {p99:.2f}x (goal <= 1)")
    for name, count in refused.items():
        if count:
            print(f"  {name}: {count} answers were not 2xx")


def p4(repeat, count=2000, delay_ms=10, connections=8):
    """P4: one job into a relay answering each message after 10 ms, 2 worker processes."""
    figures = Figures()
    with Bench() as bench:
        bench.smtp_connections = connections
        bench.slow_relay(delay_ms)
        web, course = bench.both_delivering()
        for _ in range(repeat):
            figures.add("emailsvc", emailsvc_delivery(web, count))
            figures.add("course", course_delivery(bench, course, count))
    header(
        f"P4: one job of {count:,} recipients, 2 worker processes x {connections} connections, "
        f"relay answering DATA after {delay_ms:g} ms (msgs/s)"
    )
    for name in ("emailsvc", "course"):
        print(figures.line(name, "msgs/s"))
    mine, theirs = figures.median("emailsvc"), figures.median("course")
    print(f"  emailsvc / course: {mine / theirs:.2f}")
    # Each emailsvc worker process holds `connections`; the course's one task holds one.
    for name, rate, held, goal in (
        ("emailsvc", mine, 2 * connections, " (goal >= 0.8)"),
        ("course", theirs, 1, ""),
    ):
        allowed = held * 1000 / delay_ms
        print(
            f"  {name}: {rate / allowed:.2f} of what {held} connection(s) allow "
            f"({allowed:g} msgs/s){goal}"
        )


def redis_bytes(bench, pattern):
    """Bytes Redis reports (MEMORY USAGE, every element counted) for the keys of ``pattern``."""
    return sum(
        bench.redis.memory_usage(key, samples=0) or 0
        for key in bench.redis.scan_iter(match=pattern, count=1000)
    )


def rss_mb(pid):
    """Resident memory of ``pid`` and its children, MB."""
    process = psutil.Process(pid)
    total = sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
    return total / 1e6


def p5(repeat, count=1_000_000, per_job=RECIPIENTS):
    """P5: Redis bytes per queued recipient (no worker running), then one worker's memory
    over ``count`` recipients sent as jobs of 10,000 into smtp-sink."""
    figures = Figures()
    with Bench() as bench:
        bench.sink()
        web = bench.emailsvc_web()
        course = bench.course_web()
        for _ in range(repeat):
            before = redis_bytes(bench, bench.prefix + "svc:*")
            status, body, _ = post(web, "/email", job(per_job), AUTH)
            assert status == 202, (status, body)
            figures.add(
                "emailsvc", (redis_bytes(bench, bench.prefix + "svc:*") - before) / per_job
            )
            before = redis_bytes(bench, bench.prefix + "course:*")
            status, body, _ = post(course, "/api/email/", job(per_job))
            assert status == 200, (status, body)
            after = redis_bytes(bench, bench.prefix + "course:*")
            figures.add("course", (after - before) / per_job)
        header(f"P5: Redis bytes per queued recipient, jobs of {per_job:,}, no worker running")
        for name in ("emailsvc", "course"):
            print(figures.line(name, "bytes", digits=1))
        print("  (goal: emailsvc <= 120)")
        # The queued jobs are sent first, then count recipients more, while memory is read.
        worker = bench.emailsvc_worker(concurrency=2)
        emailsvc_delivery(web, per_job)
        start = rss_mb(worker.process.pid)
        samples = [start]
        for n in range(max(1, count // per_job)):
            emailsvc_delivery(web, per_job)
            samples.append(rss_mb(worker.process.pid))
            if n % 10 == 9:
                print(f"  {(n + 1) * per_job:,} recipients: worker {samples[-1]:.1f} MB")
        header(f"P5: worker memory (main process and its 2 children) over {count:,} recipients")
        print(
            f"  after warm-up {start:.1f} MB, at the end {samples[-1]:.1f} MB, "
            f"max {max(samples):.1f} MB"
        )
        print(f"  growth {samples[-1] - start:+.1f} MB (goal <= 30)")


GOALS = {"p1": p1, "p2": p2, "p3": p3, "p4": p4, "p5": p5}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("goal", choices=sorted(GOALS))
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (at least 3)")
    parser.add_argument(
        "--recipients",
        type=int,
        help="recipients per job (P1, P2: 10,000; P3: 1; P4: 2,000); P5: in all (1,000,000)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        help="P1, P4: emailsvc.smtp.connections of each worker process (P1: 1; P4: 8)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 3:
        parser.error("--repeat must be at least 3")
    options = {}
    if args.recipients:
        options["count"] = args.recipients
    if args.connections:
        if args.goal not in ("p1", "p4"):
            parser.error("--connections is for p1 and p4")
        options["connections"] = args.connections
    with contextlib.suppress(KeyboardInterrupt):
        GOALS[args.goal](args.repeat, **options)


if __name__ == "__main__":
    main()
