"""A classroom on one server: the limits of `nablanet serve --max-sessions N` and how trainings share the CPU
with drawings (turns.py). The load itself is measured by benchmarks/classroom_load.py, not here."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import uvicorn
from playground_drawing import drawn_png
from starlette.testclient import TestClient

import nablanet as nn
from nablanet.app.cli import main
from nablanet.app.playground import server
from nablanet.app.playground.training import ToySession, ToySettings
from nablanet.app.playground.turns import Turns

SETTINGS = json.dumps({"epochs": 100_000, "speed": "slow"})


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    model = nn.build_classifier(784, 10, rng=0)  # the notebook's softmax classifier: predictions are quick
    model.metadata = {"dataset": "mnist"}
    (runs / "softmax").mkdir()
    nn.save(model, runs / "softmax" / "model.npz")
    (runs / "softmax" / "metrics.json").write_text('{"test_accuracy": 0.1}')
    return server.find_models([], runs, print), runs


@contextlib.contextmanager
def serving(app):
    """The app behind uvicorn on a free port of 127.0.0.1, in a thread of this process; its port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    until(lambda: uvicorn_server.started)
    try:
        yield listener.getsockname()[1]
    finally:
        app.state.playground.stopping = True  # the event streams end
        uvicorn_server.should_exit = True
        thread.join(10)
        listener.close()
        assert not thread.is_alive()


def until(condition, seconds: float = 20.0) -> None:
    """Wait for ``condition()`` to hold (checked every 10 ms); fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "waited in vain"
        time.sleep(0.01)


def ask(port: int, method: str, path: str, body: bytes | str | None = None, kind: str = "application/json"):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    connection.request(method, path, body=body, headers={"content-type": kind} if body is not None else {})
    response = connection.getresponse()
    answer = response.read()
    connection.close()
    return response.status, response.headers, json.loads(answer) if answer else None


def watch(port: int, key: str) -> http.client.HTTPConnection:
    """A page watching session ``key``: its event stream, open once its first snapshot has come."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    connection.request("GET", f"/api/sessions/{key}/events")
    response = connection.getresponse()
    assert response.status == 200
    while not response.readline().startswith(b"data: "):
        pass
    return connection


def test_a_full_server_closes_only_a_session_no_page_watches_and_then_refuses_with_a_503(models, monkeypatch):
    monkeypatch.setattr(server, "SESSION_GRACE", 0.0)  # unwatched is unused at once: no waiting in this test
    found, runs = models
    app = server.create_app(found, runs, max_sessions=2)
    statuses = []
    with serving(app) as port:

        def new_session():
            status, headers, answer = ask(port, "POST", "/api/sessions", SETTINGS)
            statuses.append(status)
            return status, headers, answer

        first, second = new_session()[2]["id"], new_session()[2]["id"]
        first_page = watch(port, first)
        third = new_session()[2]["id"]  # room made by closing the second: no page watches it
        assert ask(port, "POST", f"/api/sessions/{second}/pause")[0] == 404
        assert ask(port, "POST", f"/api/sessions/{first}/pause")[0] == 200
        third_page = watch(port, third)

        status, headers, answer = new_session()  # both watched: refused, and nothing is closed
        assert status == 503 and headers["retry-after"] == "10"
        assert answer["error"].startswith("the playground's 2 training sessions are all in use, each by an open page")
        assert "--max-sessions" in answer["error"]
        assert ask(port, "POST", f"/api/sessions/{first}/pause")[0] == 200

        picture = drawn_png("7")  # a full server still answers the drawings
        assert ask(port, "POST", "/api/models/0/predict", picture, "image/png")[0] == 200

        first_page.close()  # the first page goes away: its session may make room now
        until(lambda: new_session()[0] == 201)
        assert ask(port, "POST", f"/api/sessions/{first}/pause")[0] == 404
        third_page.close()
    assert set(statuses) <= {201, 503} and 503 in statuses


def test_a_session_just_opened_is_not_closed_before_its_page_watches_it(models):
    found, runs = models
    with TestClient(server.create_app(found, runs, max_sessions=1), base_url="http://127.0.0.1") as client:
        assert client.post("/api/sessions", content=SETTINGS, headers={"content-type": "application/json"}).is_success
        refused = client.post("/api/sessions", content=SETTINGS, headers={"content-type": "application/json"})
    assert refused.status_code == 503 and "1 training sessions are all in use" in refused.json()["error"]


def test_serve_passes_max_sessions_on(monkeypatch):
    received = {}
    monkeypatch.setattr(server, "serve", lambda models, **options: received.update(options))
    assert main(["serve", "--max-sessions", "40", "--port", "0"]) == 0
    assert received["max_sessions"] == 40


def test_trainings_wait_while_a_drawing_is_under_way():
    turns = Turns(at_once=1)
    session = ToySession(ToySettings(samples=30, epochs=100_000, speed="fast"), turns)
    with turns.drawing():
        session.resume()
        until(lambda: len(turns._waiting) == 1)  # its training thread waits for its first turn
        assert len(session.history.loss) == 0 and not turns._computing
        niceness = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert os.getpriority(os.PRIO_PROCESS, session._thread.native_id) == min(19, niceness + 10)
    until(lambda: len(session.history.loss) >= 3)  # the drawing done, it trains
    with turns.drawing():  # a drawing under way: it stops at the end of a batch, and waits
        until(lambda: len(turns._waiting) == 1)
        epochs = len(session.history.loss)
        assert not turns._computing and len(session.history.loss) == epochs
    session.close()
    session.join(10)
    assert turns.training == 0 and not turns._computing and not turns._waiting


def test_sessions_take_their_turns_first_come_first_served():
    turns = Turns(at_once=1)
    order = []
    turns.take()  # this thread computes; three sessions queue up behind it

    def session(name):
        turns.take()
        order.append(name)
        turns.give()

    threads = []
    for name in "abc":
        threads.append(threading.Thread(target=session, args=(name,)))
        threads[-1].start()
        until(lambda: len(turns._waiting) == len(threads))
    turns.give()
    for thread in threads:
        thread.join(10)
    assert order == ["a", "b", "c"]


def test_the_pages_share_the_snapshots_of_one_session_alone():
    turns = Turns(at_once=1)
    assert turns.snapshot_seconds() == 0.05
    turns.training = 10
    assert turns.snapshot_seconds() == pytest.approx(0.5)  # ten pages, 20 snapshots a second in all
    with pytest.raises(ValueError, match="at_once must be a positive integer or None"):
        Turns(at_once=0)


def test_the_server_holds_openblas_to_one_thread():
    script = (
        "import numpy, threadpoolctl\n"
        "from nablanet.app.playground.turns import one_blas_thread\n"
        "before = [pool['num_threads'] for pool in threadpoolctl.threadpool_info() if pool['user_api'] == 'blas']\n"
        "one_blas_thread()\n"
        "after = [pool['num_threads'] for pool in threadpoolctl.threadpool_info() if pool['user_api'] == 'blas']\n"
        "print(before, after)\n"
    )
    environment = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, timeout=60)
    assert result.stdout.split() == ["[2]", "[1]"], result.stderr
