"""Does a SIGKILLed Redis keep every write it acknowledged? ``appendfsync everysec`` against
``always``, with the disk kept busy.

For each mode and trial: start ``redis-server`` (AOF on) in a folder of its own, write
transactions of 200 KB (an RPUSH and an INCR, the shape of a job's creation) and count
those Redis answered, SIGKILL it after a random 1 to 3 s, restart it on its AOF and read
the counter back. A thread meanwhile writes and fsyncs a file beside the AOF, as other
programs on a shared host do: with ``everysec`` Redis postpones writing its AOF while its
own background fsync is still running, and answers the commands all the same, so what it
answered in those moments exists only in its memory when it is killed.

    .venv/bin/python -m bench.aof_durability [--trials 40]

Prints, per mode, the trials that lost acknowledged transactions and the most lost in one.
"""

import argparse
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time

import redis

PAYLOAD = b"x" * 200_000


def start(folder, port, mode):
    """Start ``redis-server`` on its AOF in ``folder``; wait until it answers."""
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", folder]
    command += ["--appendonly", "yes", "--appendfsync", mode, "--save", ""]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.ping()
            return process, client
        except redis.RedisError:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.02)


def trial(folder, port, mode, rng):
    """Acknowledged transactions lost by one SIGKILL (0 when none)."""
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    process, client = start(folder, port, mode)
    acknowledged = 0
    stop = time.monotonic() + rng.uniform(1.0, 3.0)
    while time.monotonic() < stop:
        client.pipeline(transaction=True).rpush("payload", PAYLOAD).incr("count").execute()
        acknowledged += 1
    process.kill()
    process.wait()
    process, client = start(folder, port, mode)
    kept = int(client.get("count") or 0)
    process.kill()
    process.wait()
    return max(0, acknowledged - kept)


def keep_disk_busy(folder, stop):
    """Write and fsync 8 MB at a time beside the AOF until ``stop`` is set."""
    block = os.urandom(1 << 20)
    path = os.path.join(folder, "busy")
    while not stop.is_set():
        with open(path, "wb") as file:
            for _ in range(8):
                file.write(block)
            file.flush()
            os.fsync(file.fileno())
    os.unlink(path)


def main():
    """Run the trials of both modes and print what each lost."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=40, help="kills per mode")
    parser.add_argument("--port", type=int, default=6391, help="the Redis's loopback port")
    parser.add_argument("--seed", type=int, default=20261207)
    options = parser.parse_args()
    rng = random.Random(options.seed)
    with tempfile.TemporaryDirectory(prefix="aof-durability-") as root:
        stop = threading.Event()
        busy = threading.Thread(target=keep_disk_busy, args=(root, stop), daemon=True)
        busy.start()
        try:
            for mode in ("everysec", "always"):
                losses = [
                    trial(os.path.join(root, mode), options.port, mode, rng)
                    for _ in range(options.trials)
                ]
                lossy = [n for n in losses if n]
                print(
                    f"appendfsync {mode}: {len(lossy)} of {options.trials} kills lost "
                    f"acknowledged transactions (at most {max(losses)} in one)"
                )
        finally:
            stop.set()
            busy.join()


if __name__ == "__main__":
    main()
