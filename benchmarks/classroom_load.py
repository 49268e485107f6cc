"""A classroom on one server: 30 students drawing while 10 others train, against ``nablanet serve``.

    python benchmarks/classroom_load.py [--students 30] [--trainings 10] [--seconds 30] [--servers 1]

It starts ``nablanet serve --port 0 --max-sessions TRAININGS`` on 127.0.0.1 (loopback only) with the MLP
784-256-128-10 (float32) of ``playground_latency.py``, opens TRAININGS Train-tab sessions with the page's
defaults (the spiral, 200 epochs a second at most) and watches each one's event stream as its page does;
then, for ``--seconds``, each of STUDENTS simulated students sends a drawn digit for prediction every
``--period`` seconds (each on its own keep-alive connection, starting at a random moment of the first
period). ``--servers 2``: two such servers, each with half the students and half the trainings, as a
proxy that sends each client to the same server (sticky routing) would share them out. It prints:

* the predict latency seen by the students (median, 99th percentile, the worst) and inside the server
  (``server_ms``);
* each training session's epochs per second (from its event stream's last snapshot);
* the CPU time the server used (how much of the 2 cores it got: other work on the machine takes the rest);
* the server's memory (resident now, and its peak; with several servers, their sum), sampled from /proc;
* what the full server answers: one more training session, and a burst of predictions beyond its queue
  (of the first server);
* every status other than 200/201 counted, and whether any request got a 500 or no answer within
  ``--timeout`` seconds (a hang): then the exit status is 1.

Everything is bounded: requests time out, the run lasts about ``--seconds`` + 15 s, the server is stopped
at the end (SIGINT, then SIGKILL after 10 s). The load average (``/proc/loadavg``) is printed before and
after, since other work on the machine makes the figures pessimistic.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from playground_drawing import drawn_png

import nablanet as nn

EPOCH = re.compile(rb'"epoch": (\d+)')


def start_server(runs: Path, trainings: int) -> tuple[subprocess.Popen, str, int]:
    """``nablanet serve`` on a free port of 127.0.0.1; the process, its host and its port."""
    command = ["serve", "--port", "0", "--runs", str(runs), "--max-sessions", str(trainings)]
    process = subprocess.Popen(
        [sys.executable, "-m", "nablanet.app.cli", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("nablanet playground at "):
            address = line.split(" at ")[1].split()[0].removeprefix("http://").rstrip("/")
            host, port = address.rsplit(":", 1)
            threading.Thread(target=_echo, args=(process.stdout,), daemon=True).start()
            return process, host, int(port)
    raise SystemExit(f"the server did not start (exit status {process.wait()})")


def _echo(stream) -> None:
    """The server's own lines (errors), shown as they come."""
    for line in stream:
        print(f"  server: {line.rstrip()}", flush=True)


class Tally:
    """Every answer's status, the 500s and the requests that got no answer in time, from all threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: collections.Counter = collections.Counter()
        self.messages: dict[tuple[int, str], int] = collections.Counter()  # (status, message): how many
        self.hangs = 0

    def record(self, status: int | None, body: bytes = b"") -> None:
        with self.lock:
            if status is None:
                self.hangs += 1
                return
            self.statuses[status] += 1
            if status >= 400:
                self.messages[status, body[:300].decode("utf-8", "replace")] += 1


def request(connection, method: str, path: str, tally: Tally, body=None, content_type=None):
    """One request; (status, body), or (None, b"") after recording a hang (no answer in time, or none)."""
    headers = {"content-type": content_type} if content_type else {}
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
    except (OSError, http.client.HTTPException):
        connection.close()
        tally.record(None)
        return None, b""
    tally.record(response.status, answer)
    return response.status, answer


class Training:
    """One student's Train tab: a session with the page's defaults, running, its event stream read as it comes."""

    def __init__(self, host: str, port: int, seed: int, tally: Tally, timeout: float):
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        settings = json.dumps({"epochs": 100_000, "seed": seed})
        status, body = request(connection, "POST", "/api/sessions", tally, settings, "application/json")
        if status != 201:
            raise SystemExit(f"cannot open training session {seed}: {status} {body[:200]!r}")
        self.key = json.loads(body)["id"]
        request(connection, "POST", f"/api/sessions/{self.key}/resume", tally, b"{}", "application/json")
        self.stream = http.client.HTTPConnection(host, port, timeout=timeout)
        self.stream.request("GET", f"/api/sessions/{self.key}/events")
        self.events = self.stream.getresponse()
        self.last = b""
        self.snapshots = 0
        self.ended = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self.events:
                if line.startswith(b"data: "):
                    self.last, self.snapshots = line, self.snapshots + 1
        except (OSError, http.client.HTTPException):
            pass
        self.ended = True

    def epoch(self) -> int:
        found = EPOCH.search(self.last)
        return int(found.group(1)) if found else 0


def student(address, pictures, period, until, latencies, inside, tally, timeout) -> None:
    """Send a drawing every ``period`` seconds until ``until`` (a late answer: the next one at once)."""
    connection = http.client.HTTPConnection(*address, timeout=timeout)
    due = time.monotonic() + random.uniform(0, period)
    while True:
        time.sleep(max(0.0, due - time.monotonic()))
        if time.monotonic() >= until:
            break
        start = time.perf_counter()
        status, body = request(connection, "POST", "/api/models/0/predict", tally, random.choice(pictures), "image/png")
        if status == 200:
            latencies.append((time.perf_counter() - start) * 1000)
            inside.append(json.loads(body)["server_ms"])
        due = max(due + period, time.monotonic())


def memory(pid: int) -> dict[str, int]:
    """The process's resident memory now and at its peak, in MiB (Linux /proc)."""
    figures = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                figures[name] = int(value.split()[0]) // 1024
    return figures


def cpu_seconds(pid: int) -> float:
    """The CPU time the process has used so far (user and system, all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as file:
        fields = file.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return "too few answers"
    p99 = statistics.quantiles(values, n=100)[-1]
    return f"median {statistics.median(values):.1f} ms, 99th percentile {p99:.1f} ms, worst {max(values):.1f} ms"


def burst(host, port, count, picture, tally, timeout) -> collections.Counter:
    """``count`` predictions sent at the same moment, each on its own connection: their statuses."""
    statuses: collections.Counter = collections.Counter()
    lock, go = threading.Lock(), threading.Event()

    def one():
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        go.wait()
        status, _ = request(connection, "POST", "/api/models/0/predict", tally, picture, "image/png")
        with lock:
            statuses[status] += 1

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join()
    return statuses


def load_average() -> str:
    with open("/proc/loadavg", encoding="ascii") as file:
        return " ".join(file.read().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--trainings", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the students draw")
    parser.add_argument("--period", type=float, default=0.5, help="seconds between one student's drawings")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds without an answer: a hang")
    parser.add_argument("--servers", type=int, default=1, help="servers sharing the students and trainings")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; load average before: {load_average()}", flush=True)

    runs = Path(tempfile.mkdtemp())
    model = nn.build_classifier(784, 10, hidden=[256, 128], dtype="float32", rng=0)
    model.metadata = {"dataset": "mnist"}
    (runs / "mlp").mkdir()
    nn.save(model, runs / "mlp" / "model.npz")
    (runs / "mlp" / "metrics.json").write_text('{"test_accuracy": 0.1}')  # nothing to measure at start
    pictures = [drawn_png(digit) for digit in "170"]

    tally = Tally()
    each = max(1, -(-args.trainings // args.servers))  # the sessions of one server, at most
    servers = [start_server(runs, each) for _ in range(args.servers)]
    process, host, port = servers[0]  # the one filled up at the end
    pids = [server[0].pid for server in servers]

    def resident() -> int:
        return sum(memory(pid)["VmRSS"] for pid in pids)

    try:
        print(f"{args.servers} server(s): {resident()} MiB resident at start", flush=True)
        trainings = [
            Training(*servers[seed % args.servers][1:], seed, tally, args.timeout) for seed in range(args.trainings)
        ]
        time.sleep(2.0)  # the trainings under way
        started, cpu_before = time.monotonic(), sum(cpu_seconds(pid) for pid in pids)
        epochs_before = [training.epoch() for training in trainings]
        until = started + args.seconds
        latencies: list[float] = []
        inside: list[float] = []
        students = [
            threading.Thread(
                target=student,
                args=(
                    servers[number % args.servers][1:],
                    pictures,
                    args.period,
                    until,
                    latencies,
                    inside,
                    tally,
                    args.timeout,
                ),
            )
            for number in range(args.students)
        ]
        for thread in students:
            thread.start()
        peak_rss = 0
        while time.monotonic() < until:
            peak_rss = max(peak_rss, resident())
            time.sleep(0.5)
        for thread in students:
            thread.join()
        seconds = time.monotonic() - started
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
        rates = [
            (training.epoch() - before) / seconds for training, before in zip(trainings, epochs_before, strict=True)
        ]
        now = resident()
        print(
            f"{args.students} students drawing every {args.period} s for {seconds:.1f} s while {args.trainings} "
            f"sessions train; load average after: {load_average()}"
        )
        print(f"  predict, as the students see it: {percentiles(latencies)} ({len(latencies)} answers)")
        print(f"  predict, inside the server:      {percentiles(inside)}")
        if rates:
            print(
                f"  training: {statistics.mean(rates):.1f} epochs/s per session on average "
                f"(from {min(rates):.1f} to {max(rates):.1f}; {sum(rates):.0f} in all)"
            )
        print(f"  server CPU: {cpu:.1f} s in {seconds:.1f} s ({cpu / seconds:.2f} of a core)")
        print(f"  server memory: {now} MiB resident, {max(peak_rss, now)} MiB at most")

        print("once full:")
        connection = http.client.HTTPConnection(host, port, timeout=args.timeout)
        status, body = request(connection, "POST", "/api/sessions", tally, b"{}", "application/json")
        print(f"  one more training session: {status} {body[:300].decode('utf-8', 'replace')}")
        time.sleep(0.5)
        print(f"  training sessions whose stream is still open: {sum(not t.ended for t in trainings)}")
        statuses = burst(host, port, 40, pictures[0], tally, args.timeout)
        print(f"  40 predictions at once: {dict(sorted(statuses.items(), key=str))}")
        print("every refusal, from the start:")
        for (code, message), count in sorted(tally.messages.items()):
            print(f"  {count} × {code} {message}")
    finally:
        for process, _, _ in servers:
            process.send_signal(signal.SIGINT)
        for process, _, _ in servers:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                print("a server did not stop within 10 s of Ctrl-C: killed")
    print(f"statuses: {dict(sorted(tally.statuses.items()))}; no answer within {args.timeout:.0f} s: {tally.hangs}")
    failed = tally.statuses[500] + tally.hangs
    print("no 500, no hang" if not failed else f"FAILED: {tally.statuses[500]} answers 500, {tally.hangs} hangs")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
