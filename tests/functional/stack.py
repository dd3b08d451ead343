"""The production stack on loopback: nginx, ``pserve production.ini`` and Celery workers.

The web and worker commands are read from docker/docker-compose.yml, so the tests run
exactly what the containers run; nginx runs the repository's template, rendered for
test ports the way the nginx image renders it.
"""

import os
import shutil
import signal
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request

import psutil
import yaml

from ..servers import ROOT, wait_for

COMPOSE_FILE = os.path.join(ROOT, "docker", "docker-compose.yml")
NGINX_TEMPLATE = os.path.join(ROOT, "docker", "nginx", "templates", "default.conf.template")


def compose():
    """The parsed docker-compose.yml."""
    with open(COMPOSE_FILE, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def compose_command(service):
    """The command a service's container runs, as a list."""
    return list(compose()["services"][service]["command"])


def local_command(command):
    """``command`` with its program taken from this virtualenv (where the image has it)."""
    program = os.path.join(os.path.dirname(sys.executable), command[0])
    return [program, *command[1:]]


class Process:
    """A subprocess whose output goes to a file, stopped by a signal."""

    def __init__(self, command, output_path, env=None, cwd=ROOT):
        self.command = command
        self.output_path = output_path
        self.env = dict(os.environ, **(env or {}))
        self.cwd = cwd
        self.process = None

    def start(self):
        self.output = open(self.output_path, "wb")
        self.process = subprocess.Popen(
            self.command, stdout=self.output, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd
        )
        return self

    def text(self):
        with open(self.output_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def wait_for_output(self, marker, timeout=60):
        """Wait until ``marker`` appears in the output; fail if the process ended first."""
        found = wait_for(lambda: marker in self.text() or self.process.poll() is not None, timeout)
        if not found or marker not in self.text():
            raise RuntimeError(f"{self.command[:3]} did not say {marker!r}:\n{self.text()}")

    def tree(self):
        """This process and all its descendants, as psutil processes."""
        try:
            parent = psutil.Process(self.process.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Send ``sig`` and wait for the exit; kill if it hangs. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self.output.closed:
            self.output.close()
        return self.process.returncode


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


def nginx_process(directory, conf):
    """nginx in the foreground, everything it writes under ``directory``."""
    program = shutil.which("nginx") or "/usr/sbin/nginx"
    directives = f"daemon off; pid {directory}/nginx.pid; error_log {directory}/error.log;"
    command = [program, "-p", str(directory), "-c", conf, "-e", f"{directory}/error.log"]
    return Process([*command, "-g", directives], os.path.join(directory, "nginx.out"))


def wait_for_http(url, timeout=30):
    """Wait until ``url`` answers 200."""

    def answers():
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    if not wait_for(answers, timeout, interval=0.2):
        raise RuntimeError(f"{url} did not answer within {timeout} s")


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
    deadline = time.monotonic() + timeout
    while alive(processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(processes)
