"""Soak: mixed load for a long while under faults, then count what was lost and duplicated.

    .venv/bin/python bench/soak.py --minutes 30

Runs everything on loopback, each piece a real process or server of its own: a Redis with
AOF (restarted once, with SIGKILL, halfway through), ``pserve`` on a generated ini, two
Celery workers (prefork, 2 processes each; one process of one of them is SIGKILLed at
random every 20 to 60 s, and a whole worker now and then, then started again), and an
aiosmtpd relay that flaps (down, answering 421, slow) a few seconds at a time. Clients
POST jobs of 1 to 10,000 recipients (most small, a few large; two clients), each recipient address
unique, until the time is up; then the soak waits for every accepted job to end and
prints: jobs accepted, jobs final, recipients lost (must be 0), duplicates, 5xx answers.
Exit status 1 when a recipient was lost or a job did not end.
"""

import argparse
import asyncio
import collections
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from aiosmtpd.controller import Controller

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
FINAL = ("sent", "partially_failed", "failed", "cancelled")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Relay:
    """A relay that counts every recipient it accepted and can be made to misbehave."""

    def __init__(self):
        self.port = free_port()
        self.mode = "accept"
        self.delay = 0.0
        self.counts = collections.Counter()
        self.lock = threading.Lock()
        self.controller = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.mode == "421":
            return "421 4.3.2 Service not available"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            self.counts.update(envelope.rcpt_tos)
        return "250 OK"

    def up(self):
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def down(self):
        if self.controller:
            self.controller.stop()
            self.controller = None


def start(command, log, env=None):
    return subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
    )


def wait_redis(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("redis-server did not start")


def request(port, method, path, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = json.dumps(body) if body is not None else None
        connection.request(method, path, data, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    except (OSError, ValueError):
        return 0, None
    finally:
        connection.close()


class Soak:
    """The processes of one soak run and what the clients were told."""

    def __init__(self, folder, seed):
        self.folder = folder
        self.rng = random.Random(seed)
        self.redis_port, self.web_port = free_port(), free_port()
        self.relay = Relay()
        self.accepted = {}  # job id -> recipient addresses
        self.refused = []  # recipient addresses of POSTs answered with an error
        self.statuses = collections.Counter()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.logs = open(os.path.join(folder, "processes.log"), "ab")
        self.processes = {}

    def write_ini(self):
        settings = {
            "emailsvc.redis_url": f"redis://127.0.0.1:{self.redis_port}/0",
            "emailsvc.mail.transport": "smtp",
            "emailsvc.smtp.host": "127.0.0.1",
            "emailsvc.smtp.port": self.relay.port,
            "emailsvc.smtp.timeout_seconds": 5,
            "emailsvc.sender": "soak@example.com",
            "emailsvc.chunk_size": 100,
            "emailsvc.lease_seconds": 6,
            "emailsvc.watchdog.stall_seconds": 15,
            "emailsvc.retry.initial_delay_seconds": 2,
            "emailsvc.retry.max_delay_seconds": 20,
            "emailsvc.limit.requests_per_minute": 0,
            "emailsvc.limit.recipients_per_hour": 0,
        }
        lines = ["[app:main]", "use = egg:emailsvc"]
        lines += [f"{key} = {value}" for key, value in settings.items()]
        lines += ["", "[server:main]", "use = egg:emailsvc#waitress", "host = 127.0.0.1"]
        lines += [f"port = {self.web_port}", "threads = 8", ""]
        lines += ["[loggers]", "keys = root", "[handlers]", "keys = console"]
        lines += ["[formatters]", "keys = generic", "[logger_root]", "level = WARNING"]
        lines += ["handlers = console", "[handler_console]", "class = StreamHandler"]
        lines += ["args = (sys.stderr,)", "formatter = generic", "[formatter_generic]"]
        lines += ["format = %(asctime)s %(levelname)s [%(name)s][%(process)d] %(message)s", ""]
        path = os.path.join(self.folder, "soak.ini")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines))
        return path

    def start_redis(self):
        command = ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1"]
        command += ["--dir", self.folder, "--appendonly", "yes", "--appendfsync", "always"]
        command += ["--save", "", "--maxmemory-policy", "noeviction"]
        self.processes["redis"] = start(command, self.logs)
        wait_redis(self.redis_port)

    def start_worker(self, name):
        command = [f"{BIN}/celery", "-A", "emailsvc.worker", "worker", "--ini", self.ini]
        command += ["--concurrency", "2", "--hostname", f"{name}-{time.monotonic_ns()}@%h"]
        self.processes[name] = start(command, self.logs)

    def run(self, minutes):
        self.relay.up()
        self.start_redis()
        self.ini = self.write_ini()
        self.processes["web"] = start([f"{BIN}/pserve", self.ini], self.logs)
        for name in ("worker-a", "worker-b"):
            self.start_worker(name)
        time.sleep(5)
        threads = [threading.Thread(target=self.client, args=(n,)) for n in range(2)]
        threads += [
            threading.Thread(target=self.kill_workers),
            threading.Thread(target=self.flap_relay),
        ]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        end = started + minutes * 60
        restarted = False
        while time.monotonic() < end:
            if not restarted and time.monotonic() > started + minutes * 30:
                self.processes["redis"].send_signal(signal.SIGKILL)
                self.processes["redis"].wait()
                time.sleep(2)
                self.start_redis()
                restarted = True
                print("redis killed and restarted on its AOF", flush=True)
            time.sleep(1)
        self.stop.set()
        for thread in threads:
            thread.join()
        self.relay.mode, self.relay.delay = "accept", 0.0
        if self.relay.controller is None:
            self.relay.up()
        return self.settle()

    def client(self, number):
        rng = random.Random(self.rng.random())
        job = 0
        while not self.stop.is_set():
            # Mostly small jobs, now and then a large one, and every 200th of 10,000.
            size = (
                10000 if job % 200 == 199 else rng.choice([1, 1, 1, 1, 5, 5, 20, 100, 500, 2000])
            )
            addresses = [f"c{number}j{job}r{i}@example.org" for i in range(size)]
            job += 1
            body = {"recipients": addresses, "subject": "Soak", "content": "Soak test"}
            status, document = request(self.web_port, "POST", "/email", body)
            with self.lock:
                self.statuses[status] += 1
                if status == 202:
                    self.accepted[document["id"]] = addresses
                else:
                    self.refused.extend(addresses)
            time.sleep(rng.uniform(0.2, 2.0))

    def kill_workers(self):
        while not self.stop.wait(self.rng.uniform(20, 60)):
            name = self.rng.choice(["worker-a", "worker-b"])
            process = self.processes[name]
            children = _children(process.pid)
            if children and self.rng.random() < 0.7:
                os.kill(self.rng.choice(children), signal.SIGKILL)  # one pool process
            else:
                os.killpg(process.pid, signal.SIGKILL)  # the whole worker
                process.wait()
                self.start_worker(name)

    def flap_relay(self):
        while not self.stop.wait(self.rng.uniform(15, 45)):
            fault = self.rng.choice(["down", "421", "slow"])
            if fault == "down":
                self.relay.down()
            elif fault == "421":
                self.relay.mode = "421"
            else:
                self.relay.delay = 0.05
            self.stop.wait(self.rng.uniform(2, 10))
            self.relay.mode, self.relay.delay = "accept", 0.0
            if self.relay.controller is None:
                self.relay.up()

    def settle(self, timeout=1800):
        deadline = time.monotonic() + timeout
        pending = dict(self.accepted)
        final = {}
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                status, document = request(self.web_port, "GET", f"/email/{job_id}")
                if status == 200 and document["status"] in FINAL:
                    final[job_id] = document
                    del pending[job_id]
            time.sleep(2)
        counts = self.relay.counts
        lost = sum(
            1
            for job_id, addresses in self.accepted.items()
            for address in addresses
            if counts[address] == 0
            and not any(e["recipient"] == address for e in final.get(job_id, {}).get("errors", ()))
        )
        refused_sent = sum(1 for address in self.refused if counts[address])
        return {
            "jobs accepted": len(self.accepted),
            "jobs final": len(final),
            "recipients accepted": sum(len(a) for a in self.accepted.values()),
            "recipients sent": sum(d["sent"] for d in final.values()),
            "recipients failed": sum(d["failed"] for d in final.values()),
            "recipients lost": lost,
            "duplicates": sum(n - 1 for n in counts.values() if n > 1),
            "refused POSTs' recipients sent": refused_sent,
            "answers": dict(self.statuses),
            # 503 is the answer when Redis cannot take a job (and then nothing is sent).
            "5xx answers but 503": sum(
                n for status, n in self.statuses.items() if status >= 500 and status != 503
            ),
        }

    def close(self):
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.relay.down()
        self.logs.close()


def _children(pid):
    try:
        output = subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        return []
    return [int(line) for line in output.split()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="emailsvc-soak-") as folder:
        soak = Soak(folder, args.seed)
        try:
            result = soak.run(args.minutes)
        finally:
            soak.close()
    for name, value in result.items():
        print(f"{name}: {value}")
    ok = result["recipients lost"] == 0 and result["jobs final"] == result["jobs accepted"]
    ok = ok and result["refused POSTs' recipients sent"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
