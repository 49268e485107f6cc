"""``nablanet serve``: the playground, a local web app on Starlette, served by uvicorn.

Routes (every error is a JSON object ``{"error": "..."}`` with a 4xx status; nothing answers with a
traceback):

========================================  =============================================================
``GET  /``                                the page (``static/``: plain HTML, CSS and JavaScript)
``GET  /api/models``                      the models it serves (id, label, summary, test accuracy), the best
``GET  /api/models/{id}``                 one model, with its weight templates (softmax classifier)
``POST /api/models/{id}/predict``         a drawn picture (``image/png``) → :func:`.inside.look_inside`
``POST /api/recipe``                      train the notebook's classifier into ``runs/`` (no model yet)
``GET  /api/recipe``                      how far that training is: epochs done, their losses, seconds
``GET  /api/toy``                         the Train tab's choices and defaults
``POST /api/sessions``                    a Train-tab session from its settings (JSON), paused at epoch 0
``POST /api/sessions/{id}/{action}``      ``resume``, ``pause`` or ``step``
``POST /api/sessions/{id}/weight``        set one weight while paused: ``{"layer", "row", "column", "value"}``
``GET  /api/sessions/{id}/export.{fmt}``  the run as code that reproduces it: ``ipynb`` or ``py``
``GET  /api/sessions/{id}/events``        its snapshots as server-sent events, as training goes on
``DELETE /api/sessions/{id}``             close it
========================================  =============================================================

Safe by default: it listens on 127.0.0.1; it opens only the model files it was given or found under
``runs/`` at start (the browser names a model by its number, never by a path); request bodies are
bounded and read only after their declared size is checked; POST bodies must declare their type
(``application/json``, ``image/png``), so another web site cannot send them without the browser's
permission, which this server never gives; the Host header must name this server (no DNS rebinding);
the page may load nothing from another host (Content-Security-Policy).

Shared by a class (``--max-sessions``): at most that many Train-tab sessions, and a full server refuses one
more with a 503 unless one is left that no page watches (:meth:`Playground.make_room`); the sessions train by
turns, after the drawings (:mod:`.turns`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import ipaddress
import json
import logging
import secrets
import socket
import threading
import time
import webbrowser
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ...core.activations import ACTIVATIONS
from ...core.convolution import AvgPool2D, Conv2D, MaxPool2D
from ...core.layers import Dense
from ...data.datasets import DATASETS, load_dataset
from ...data.idx import DatasetError
from ...data.images import load_image
from ...files.folders import new_run_folder
from ...files.serialization import ModelFileError
from ...training.callbacks import Callback
from ...training.model import Sequential
from .. import run
from ..model_commands import class_names, load_model_file, picture_style
from ..terminal import describe
from . import export
from .inside import colour_scale, is_softmax_classifier, look_inside, templates_limit, weight_templates
from .training import ToySession, ToySettings, choices, finite
from .turns import Turns, one_blas_thread

STATIC = Path(__file__).parent / "static"
MAX_IMAGE_BYTES = 2 * 2**20  # a 280×280 canvas is ~10 KB as PNG
HEAD_SECONDS = 5  # a request's line and headers must come within this (a browser sends them at once)
BODY_SECONDS = 10  # and its body (at most 2 MiB) within this of its head
HEAVY_AT_ONCE = 2  # predictions and evaluations computed at once (the machine's cores)
HEAVY_WAITING = 16  # more waiting than this: "busy", at once
MAX_TEMPLATES = 100  # weight templates in a model's details: the first 100 classes
MAX_IMAGE_PIXELS = 1_000_000  # the pad has 78,400; a small PNG of huge size would cost memory and time
MAX_JSON_BYTES = 16 * 2**10
MAX_SESSIONS = 8  # Train-tab sessions at once (--max-sessions); when full, see Playground.make_room
SESSION_GRACE = 10.0  # seconds: a session used this recently is in use, even if no page watches it (yet)
TRAINING_AT_ONCE = 1  # sessions computing at once, after the drawings (see turns.py)
MAX_MODELS = 50
EVENT_PERIOD = 0.05  # seconds between looks at a session for a new snapshot
KEEP_ALIVE = 15.0  # seconds: a comment line keeps an idle event stream open through proxies
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


# ---------------------------------------------------------------------------------------------- models


@dataclasses.dataclass
class ServedModel:
    """A model file the playground serves, under the number the page uses for it."""

    id: int
    name: str
    model: Sequential
    test_accuracy: float | None
    measured: bool = False  # whether the test accuracy was asked for (and found or not) already
    measuring: asyncio.Future | None = dataclasses.field(default=None, repr=False)  # the measurement under way

    def listing(self) -> dict[str, Any]:
        kind = "softmax classifier" if is_softmax_classifier(self.model) else _kind(self.model)
        accuracy = "not measured yet" if self.test_accuracy is None else f"{100 * self.test_accuracy:.2f} %"
        shape = architecture(self.model)
        return {
            "id": self.id,
            "name": self.name,
            "kind": kind,
            "architecture": shape,
            "label": f"{Path(self.name).parent.name or self.name}: {kind} {shape}, test accuracy {accuracy}",
            "dataset": self.model.metadata.get("dataset") or "mnist",
            "summary": self.model.summary(),
            "test_accuracy": self.test_accuracy,
        }


def _kind(model: Sequential) -> str:
    names = {type(layer).__name__ for layer in model.layers}
    return "convolutional network" if "Conv2D" in names else "multilayer perceptron"


def architecture(model: Sequential) -> str:
    """The layers in a few characters, for the model list: ``784→64→10 relu`` (the input's size, then each
    Dense layer's units, ``conv 8`` for a Conv2D of 8 maps, ``pool`` for a pooling layer; then the hidden
    activations by their ``--activation`` names)."""
    steps = [str(model.layers[0].input_size)] if isinstance(model.layers[0], Dense) else ["28×28"]
    activations: list[str] = []
    for layer in model.layers:
        if isinstance(layer, Dense):
            steps.append(str(layer.units))
        elif isinstance(layer, Conv2D):
            steps.append(f"conv {layer.out_channels}")
        elif isinstance(layer, (MaxPool2D, AvgPool2D)):
            steps.append("pool")
        elif type(layer) in ACTIVATIONS.values() and ACTIVATIONS.name_of(type(layer)) not in activations:
            activations.append(ACTIVATIONS.name_of(type(layer)))
    return "→".join(steps) + "".join(f" {name}" for name in activations)


def best_model(models: list[ServedModel]) -> int | None:
    """The number of the model with the highest recorded test accuracy (the first, the newest, among equals;
    the first if none is recorded); None if there is no model."""
    if not models:
        return None
    recorded = [served for served in models if served.test_accuracy is not None]
    return max(recorded, key=lambda served: served.test_accuracy or 0.0).id if recorded else models[0].id


def _recorded_accuracy(folder: Path) -> float | None:
    """The test accuracy in the run's metrics.json, if it holds a plausible one."""
    try:
        with open(folder / "metrics.json", encoding="utf-8") as file:
            text = file.read(1 << 20)
        value = json.loads(text).get("test_accuracy")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) and 0 <= value <= 1 else None


def open_model(path: Path, number: int, name: str | None = None) -> ServedModel:
    """Load a model file for serving; a ``ValueError``/``OSError`` saying why it cannot be served."""
    model = load_model_file(path)
    picture_style(model)  # a ValueError unless it takes 28×28 pictures
    return ServedModel(number, name or str(path), model, _recorded_accuracy(path.parent))


def _display_name(path: Path, runs: Path) -> str:
    """A model file's name as the page shows it: from the runs folder on (runs/20261129-101120/model.npz)."""
    return str(Path(runs.name) / path.relative_to(runs))


def find_models(paths, runs: Path, report) -> list[ServedModel]:
    """The models given on the command line (each must load), else those found under ``runs``: any
    ``model.npz`` one or two folders deep, newest first, at most ``MAX_MODELS``. ``report`` receives a line
    for each file found that cannot be served."""
    if paths:
        return [open_model(Path(path), number) for number, path in enumerate(paths)]
    found = sorted(
        [*runs.glob("*/model.npz"), *runs.glob("*/*/model.npz")], key=lambda p: p.stat().st_mtime, reverse=True
    )
    served: list[ServedModel] = []
    for path in found[:MAX_MODELS]:
        try:
            served.append(open_model(path, len(served), _display_name(path, runs)))
        except (ValueError, OSError, ModelFileError, DatasetError) as error:
            report(f"skipped {path}: {error}")
    return served


# ---------------------------------------------------------------------------------------------- the app


class Playground:
    """The state the routes share: the served models and the Train-tab sessions."""

    def __init__(self, models: list[ServedModel], runs: Path, max_sessions: int = MAX_SESSIONS):
        self.models = models
        self.runs = runs
        self.max_sessions = max_sessions
        self.sessions: dict[str, ToySession] = {}
        self.watched: collections.Counter[str] = collections.Counter()  # each session's open event streams
        self.stopping = False  # set when the server is asked to stop: event streams end
        self.heavy = asyncio.Semaphore(HEAVY_AT_ONCE)  # predictions and evaluations: a bounded queue
        self.heavy_waiting = 0
        self.turns = Turns(TRAINING_AT_ONCE)  # the sessions' share of the CPU: what drawing leaves
        self._lock = threading.Lock()
        self._training_recipe = threading.Lock()
        self.recipe: RecipeProgress | None = None  # the last training of the notebook's classifier

    def model(self, request: Request) -> ServedModel:
        number = request.path_params["id"]
        if not 0 <= number < len(self.models):
            served = f"the models are 0 to {len(self.models) - 1}" if self.models else "no model is served yet"
            raise HTTPException(404, f"no model number {number}: {served}")
        return self.models[number]

    def session(self, request: Request) -> ToySession:
        key = request.path_params["id"]
        with self._lock:
            session = self.sessions.get(key)
            if session is None or session.state == "closed":
                raise HTTPException(404, "no such training session (closed, or replaced by newer ones): press Reset")
        session.last_used = time.monotonic()
        return session

    def make_room(self) -> None:
        """Make room for one more session: with ``max_sessions`` open, close the one left unused longest among
        those no page watches (and unused for ``SESSION_GRACE`` seconds); if every one is in use, a 503 that
        says so — a student's training is never closed under their eyes."""
        with self._lock:
            if len(self.sessions) < self.max_sessions:
                return
            now = time.monotonic()
            unused = [
                key
                for key, session in self.sessions.items()
                if not self.watched[key] and now - session.last_used >= SESSION_GRACE
            ]
            if not unused:
                raise HTTPException(
                    503,
                    f"the playground's {self.max_sessions} training sessions are all in use, each by an open page: "
                    "try again when one is closed (a server for a class is started with a larger --max-sessions)",
                    headers={"retry-after": "10"},
                )
            oldest = min(unused, key=lambda key: self.sessions[key].last_used)
            self.sessions.pop(oldest).close(
                f"closed: more than {self.max_sessions} training sessions were open, and this one was used least "
                "recently; press Reset for a new one"
            )

    def add_session(self, session: ToySession) -> str:
        """Keep ``session`` under a new random key (after :meth:`make_room`, which may refuse it); the key."""
        self.make_room()
        key = secrets.token_urlsafe(12)
        with self._lock:
            self.sessions[key] = session
        return key

    def close(self) -> None:
        with self._lock:
            for session in self.sessions.values():
                session.close()
            self.sessions.clear()


async def _body(request: Request, content_type: str, limit: int) -> bytes:
    """The request's body, of the given type and at most ``limit`` bytes (checked before it is read)."""
    declared = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if declared != content_type:
        raise HTTPException(415, f"send {content_type}, not {declared or 'an undeclared type'}")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise HTTPException(413, f"the body may have at most {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body may have at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _json(request: Request) -> Any:
    try:
        return json.loads(await _body(request, "application/json", MAX_JSON_BYTES))
    except (ValueError, RecursionError):
        raise HTTPException(400, "the body is not valid JSON") from None


def _playground(request: Request) -> Playground:
    return request.app.state.playground


async def page(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html")


async def list_models(request: Request) -> Response:
    playground = _playground(request)
    return JSONResponse(
        {
            "models": [served.listing() for served in playground.models],
            "best": best_model(playground.models),
            "runs": str(playground.runs),
            "recipe": run.TrainingSettings().as_dict(),
        }
    )


async def model_details(request: Request) -> Response:
    served = _playground(request).model(request)
    if served.test_accuracy is None and not served.measured:
        if served.measuring is None:  # the first request measures; the others at the same time wait for it
            served.measuring = asyncio.ensure_future(_heavy(request, _measure_accuracy, served.model))
        measuring = served.measuring
        try:
            served.test_accuracy = await asyncio.shield(measuring)  # a request that goes away stops no one else's
            served.measured = True
        finally:
            if measuring.done() and served.measuring is measuring:
                served.measuring = None
    details = served.listing()
    if is_softmax_classifier(served.model):
        every = class_names(served.model)
        names = every[:MAX_TEMPLATES]
        details["templates_of"] = len(every)  # the page says "the first 100 of …" when it shows fewer
        details["templates"] = weight_templates(served.model, names)
        limit = templates_limit(served.model, len(names))
        details["templates_scale"] = colour_scale("RdBu_r", -limit, limit)
    return JSONResponse(details)


def _measure_accuracy(model: Sequential) -> float | None:
    """The model's accuracy on its data set's test images; None if that data set cannot be read here or does
    not fit the model (a model of another number of classes)."""
    name = model.metadata.get("dataset") or "mnist"
    try:
        data = load_dataset(name if name in DATASETS else "mnist", dtype=model.dtype)
        return round(model.evaluate(data.X_test, data.Y_test)["accuracy"], 4)
    except (OSError, ValueError, DatasetError, MemoryError):  # not measured: the page says so, once
        return None


async def _heavy(request: Request, work, *arguments, for_this_client: bool = False):
    """Run ``work(*arguments)`` in a worker thread, at most ``HEAVY_AT_ONCE`` such at a time; with
    ``HEAVY_WAITING`` requests already waiting for their turn, a 503 at once instead of a longer queue.
    ``for_this_client``: the work is for this request alone, so a client that goes away while it waits
    gives its place up (``ClientDisconnect``) instead of having its work done for no one."""
    playground = _playground(request)
    if playground.heavy_waiting >= HEAVY_WAITING:
        raise HTTPException(503, "the playground is busy: try again in a moment", headers={"retry-after": "1"})
    with playground.turns.drawing():  # the trainings wait for it, from the moment it comes
        playground.heavy_waiting += 1
        try:
            await _turn(playground.heavy, request if for_this_client else None)
        finally:
            playground.heavy_waiting -= 1
        try:
            return await in_daemon_thread(work, *arguments)
        finally:
            playground.heavy.release()


async def _turn(places: asyncio.Semaphore, request: Request | None) -> None:
    """Take one of ``places``; with a ``request``, raise ``ClientDisconnect`` (holding no place) if its client
    disconnects first."""
    if request is None or not places.locked():  # a free place is taken at once, without waiting
        await places.acquire()
        return
    taking = asyncio.ensure_future(places.acquire())
    gone = asyncio.ensure_future(_disconnected(request))
    taken = False
    try:
        await asyncio.wait({taking, gone}, return_when=asyncio.FIRST_COMPLETED)
        taken = taking.done()
    finally:  # the client went away, or the server is stopping: hold no place
        gone.cancel()
        if not taken:
            taking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await taking
            if not taking.cancelled():  # it took a place just before it was cancelled
                places.release()
    if not taken:
        raise ClientDisconnect()


async def _disconnected(request: Request) -> None:
    """Return once the request's client has disconnected (its body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def in_daemon_thread(work, *arguments):
    """``work(*arguments)`` in a thread of its own, awaited. The thread is a daemon: when the server stops, the
    process exits at once instead of waiting for an evaluation or a training to finish (Python waits for the
    threads of a pool, which kept a stopped server busy at full CPU until ``kill -9``)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(result, failure: BaseException | None) -> None:
        if future.done():  # the request was cancelled meanwhile
            return
        if failure is not None:
            future.set_exception(failure)
        else:
            future.set_result(result)

    def target() -> None:
        result, failure = None, None
        try:
            result = work(*arguments)
        except BaseException as error:  # handed to the awaiting request, whatever it is
            failure = error
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server has stopped
            loop.call_soon_threadsafe(settle, result, failure)

    threading.Thread(target=target, name="nablanet playground work", daemon=True).start()
    return await future


async def predict(request: Request) -> Response:
    served = _playground(request).model(request)
    picture = await _body(request, "image/png", MAX_IMAGE_BYTES)
    start = time.perf_counter()
    try:
        view = await _heavy(request, _look, served, picture, for_this_client=True)
    except ValueError as error:  # a picture that is none (DatasetError), a model whose outputs overflow
        raise HTTPException(422, str(error)) from None
    milliseconds = (time.perf_counter() - start) * 1000
    view["server_ms"] = round(milliseconds, 2)
    return JSONResponse(view, headers={"server-timing": f"predict;dur={milliseconds:.2f}"})


def _look(served: ServedModel, picture: bytes) -> dict:
    """The Draw tab's views of one picture. No lock: an inference pass keeps nothing in the layers, so
    requests for one model run at once, each in its own thread."""
    x = load_image(picture, picture_style(served.model), max_pixels=MAX_IMAGE_PIXELS)
    return look_inside(served.model, x, class_names(served.model))


async def train_recipe(request: Request) -> Response:
    playground = _playground(request)
    await _json(request)  # a declared JSON body: no other web site can send this request unasked
    if not playground._training_recipe.acquire(blocking=False):
        raise HTTPException(409, "the notebook's classifier is being trained already")
    playground.recipe = RecipeProgress(run.TrainingSettings().epochs)
    try:
        result = await in_daemon_thread(_train_recipe, playground.runs, playground.recipe)
    except OSError as error:
        raise HTTPException(503, f"cannot write the run under {playground.runs}: {describe(error)}") from None
    finally:
        playground._training_recipe.release()
    path = result.folder / "model.npz"
    served = open_model(path, len(playground.models), _display_name(path, playground.runs))
    served.test_accuracy = round(result.test_accuracy, 4)
    playground.models.append(served)
    return JSONResponse(served.listing(), status_code=201)


def _train_recipe(runs: Path, progress: RecipeProgress) -> run.RunResult:
    return run.train_run(
        run.TrainingSettings(), out=new_run_folder(runs), report=lambda line: None, callbacks=[progress]
    )


class RecipeProgress(Callback):
    """How far the training of the notebook's classifier is, for the page (``GET /api/recipe``): the epoch
    under way and its batches, each finished epoch's loss, and the seconds since it started."""

    def __init__(self, epochs: int):
        self.epochs = epochs
        self.epoch = 0  # the epoch under way, from 0
        self.batch, self.batches = 0, 0
        self.losses: list[float] = []
        self.started = time.monotonic()

    def on_epoch_begin(self, epoch, num_batches):
        self.epoch, self.batch, self.batches = epoch, 0, num_batches

    def on_batch_end(self, batch, loss):
        self.batch = batch + 1

    def on_epoch_end(self, epoch, logs):
        self.losses.append(float(logs["loss"]))

    def as_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "epoch": self.epoch,
            "batch": self.batch,
            "batches": self.batches,
            "losses": [round(loss, 6) for loss in self.losses],
            "seconds": round(time.monotonic() - self.started, 1),
        }


async def recipe_progress(request: Request) -> Response:
    playground = _playground(request)
    training = playground._training_recipe.locked()
    progress = playground.recipe.as_dict() if playground.recipe is not None else None
    return JSONResponse(finite({"training": training, "progress": progress}))  # a diverged loss: null


async def toy_choices(request: Request) -> Response:
    return JSONResponse(choices())


async def create_session(request: Request) -> Response:
    try:
        settings = ToySettings.from_request(await _json(request))
    except (ValueError, TypeError) as error:
        raise HTTPException(400, str(error)) from None
    playground = _playground(request)
    playground.make_room()  # a full server refuses before it computes anything
    session = await run_in_threadpool(ToySession, settings, playground.turns)
    key = playground.add_session(session)
    return JSONResponse({"id": key, **session.description()}, status_code=201)


ACTIONS = {"resume": ToySession.resume, "pause": ToySession.pause, "step": ToySession.step}


async def control_session(request: Request) -> Response:
    session = _playground(request).session(request)
    action = ACTIONS.get(request.path_params["action"])
    if action is None:
        raise HTTPException(404, f"the actions are {', '.join(ACTIONS)}")
    action(session)
    return JSONResponse({"state": session.state})


async def edit_weight(request: Request) -> Response:
    session = _playground(request).session(request)
    edit = await _json(request)
    if not isinstance(edit, dict) or set(edit) != {"layer", "row", "column", "value"}:
        raise HTTPException(400, 'send {"layer": …, "row": …, "column": …, "value": …}')
    try:
        await run_in_threadpool(session.set_weight, edit["layer"], edit["row"], edit["column"], edit["value"])
    except ValueError as error:
        raise HTTPException(409 if "paused" in str(error) else 400, str(error)) from None
    return JSONResponse({"edits": len(session.edits)})


async def export_session(request: Request) -> Response:
    """The session's run as a notebook or a script, as a download named after the data set and the epoch."""
    session = _playground(request).session(request)
    kind = request.path_params["format"]
    if kind not in export.FORMATS:
        raise HTTPException(404, f"the formats are {', '.join(export.FORMATS)}")
    if not await run_in_threadpool(lambda: session.between_epochs):  # it may wait for a snapshot's publishing
        raise HTTPException(
            409,
            "pause the training first, and let the epoch under way end: the export reproduces the run up to the "
            "epoch shown",
        )
    text = export.notebook(session) if kind == "ipynb" else export.script(session)
    name = f"nablanet-{session.settings.dataset}-epoch-{len(session.history.loss)}.{kind}"
    disposition = {"content-disposition": f'attachment; filename="{name}"'}
    return Response(text, media_type=export.FORMATS[kind], headers=disposition)


async def close_session(request: Request) -> Response:
    playground = _playground(request)
    session = playground.session(request)
    session.close()
    with playground._lock:
        playground.sessions.pop(request.path_params["id"], None)
    return Response(status_code=204)


async def session_events(request: Request) -> Response:
    playground = _playground(request)
    session = playground.session(request)
    key = request.path_params["id"]

    async def events():
        seen, quiet_since = -1, time.monotonic()
        playground.watched[key] += 1  # a session someone watches is in use: never closed to make room
        try:
            while session.state != "closed" and not playground.stopping:
                session.last_used = time.monotonic()
                if session.version != seen:
                    seen = session.version
                    yield f"data: {session.snapshot_json}\n\n"
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > KEEP_ALIVE:
                    yield ": still here\n\n"
                    quiet_since = time.monotonic()
                await asyncio.sleep(EVENT_PERIOD)
            yield f"data: {session.snapshot_json}\n\n"
        finally:
            playground.watched[key] -= 1
            if playground.watched[key] <= 0:
                del playground.watched[key]

    return StreamingResponse(events(), media_type="text/event-stream", headers={"x-accel-buffering": "no"})


async def _error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return JSONResponse({"error": error.detail}, status_code=error.status_code, headers=error.headers)


class _Guard:
    """ASGI middleware: refuse a request for another host name (:func:`host_check`), add ``SECURITY_HEADERS``
    to every HTTP response, refuse API requests that a browser
    marks as sent by another site's page (``Sec-Fetch-Site``), and turn an unexpected exception into a 500
    with a JSON error and one line on stderr (``report``) — no traceback anywhere."""

    def __init__(self, app, report, listening: str):
        self.app, self.report, self.host_allowed = app, report, host_check(listening)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False
        headers = dict(scope["headers"])
        if not self.host_allowed(headers.get(b"host", b"").decode("latin-1")):
            refused = JSONResponse({"error": "the playground answers requests for its own address only"}, 400)
            return await refused(scope, receive, send)
        site = headers.get(b"sec-fetch-site", b"")
        if scope["path"].startswith("/api/") and site in (b"cross-site", b"same-site"):
            # another web site's page (an <img>, a form) asking the playground to compute: never
            refused = JSONResponse({"error": "the playground answers its own page only"}, status_code=403)
            return await refused(scope, receive, send)

        async def send_with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except ClientDisconnect:
            return  # the browser went away mid-request: nobody to answer, nothing wrong here
        except asyncio.CancelledError:  # the server is stopping and cut the request short: say so, quietly
            if not started:
                response = JSONResponse({"error": "the playground is stopping"}, status_code=503)
                await response(scope, receive, send_with_headers)
        except Exception as error:
            self.report(f"{scope.get('method')} {scope.get('path')}: {describe(error)}")
            if not started:
                response = JSONResponse({"error": f"the server failed: {describe(error)}"}, status_code=500)
                await response(scope, receive, send_with_headers)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this computer only: localhost or an address of 127.0.0.0/8."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The host of a Host header, without its port and brackets, in lower case: "[::1]:8000" → "::1"."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.partition(":")[0] if header.count(":") == 1 else header


def host_check(listening: str):
    """Which Host headers the playground answers, listening on the address ``listening``.

    DNS rebinding: a page on evil.example whose name is made to point at this computer sends
    ``Host: evil.example`` — the one thing its browser cannot hide. An address typed as such (any IP
    address) cannot be such a name, nor can "localhost"; so the playground answers those and, listening
    beyond loopback, this computer's own name ("myhost" of ``socket.gethostname()``), and nothing else.
    On loopback, only loopback addresses and "localhost".
    """
    loopback = is_loopback(listening)
    names = {"localhost"} if loopback else {"localhost", socket.gethostname().lower()}

    def allowed(header: str) -> bool:
        host = host_name(header)
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return host in names
        return address.is_loopback or not loopback

    return allowed


def create_app(
    models: list[ServedModel],
    runs: Path | str = "runs",
    host: str = "127.0.0.1",
    report=print,
    max_sessions: int = MAX_SESSIONS,
) -> Starlette:
    """The playground's ASGI app serving ``models``; ``host`` is the address it listens on (on a loopback
    address, requests must name 127.0.0.1 or localhost as their Host); ``report`` receives error lines."""
    playground = Playground(models, Path(runs), max_sessions)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        playground.close()

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/api/models", list_models),
            Route("/api/models/{id:int}", model_details),
            Route("/api/models/{id:int}/predict", predict, methods=["POST"]),
            Route("/api/recipe", train_recipe, methods=["POST"]),
            Route("/api/recipe", recipe_progress, methods=["GET"]),
            Route("/api/toy", toy_choices),
            Route("/api/sessions", create_session, methods=["POST"]),
            Route("/api/sessions/{id:str}/events", session_events),
            Route("/api/sessions/{id:str}/export.{format:str}", export_session),
            Route("/api/sessions/{id:str}/weight", edit_weight, methods=["POST"]),
            Route("/api/sessions/{id:str}/{action:str}", control_session, methods=["POST"]),
            Route("/api/sessions/{id:str}", close_session, methods=["DELETE"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(_Guard, report=report, listening=host)],
        exception_handlers={HTTPException: _error},
        lifespan=lifespan,
    )
    app.state.playground = playground
    return app


def _quiet_shutdown(record: logging.LogRecord) -> bool:
    """A filter for uvicorn's log: its line on requests cut short by the shutdown (each already ends quietly
    in :class:`_Guard`) is left out; the command line says "interrupted" or "terminated" instead."""
    return "timeout graceful shutdown exceeded" not in record.getMessage()


def _protocol_with_deadline():
    """uvicorn's HTTP/1.1 protocol with deadlines: a client must send a request's line and headers within
    ``HEAD_SECONDS`` of connecting (or of its last answer), and its body within ``BODY_SECONDS`` of its head,
    or it is disconnected (uvicorn itself waits for ever, so that a hundred silent or trickling connections
    would stay open)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Protocol(H11Protocol):
        deadline: asyncio.TimerHandle | None = None
        awaiting = h11.IDLE  # what the deadline waits to see end: the head (IDLE) or the body (SEND_BODY)

        def connection_made(self, transport):
            super().connection_made(transport)
            self._arm(h11.IDLE, HEAD_SECONDS)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm(h11.IDLE, HEAD_SECONDS)

        def handle_events(self) -> None:
            super().handle_events()
            state = self.conn.their_state
            if self.deadline is not None and state is not self.awaiting:
                if state is h11.SEND_BODY:
                    self._arm(h11.SEND_BODY, BODY_SECONDS)  # the head came: now the body
                else:
                    self.deadline.cancel()  # the whole request came
                    self.deadline = None

        def connection_lost(self, exc: Exception | None) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
            super().connection_lost(exc)

        def _arm(self, awaiting, seconds: float) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
            self.awaiting = awaiting
            self.deadline = self.loop.call_later(seconds, self._too_slow)

        def _too_slow(self) -> None:
            if self.conn.their_state is self.awaiting and not self.transport.is_closing():
                self.transport.close()

    return Protocol


def serve(
    model_paths,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    runs="runs",
    open_browser=False,
    report=print,
    max_sessions: int = MAX_SESSIONS,
):
    """Run the playground until Ctrl-C or SIGTERM: ``nablanet serve``. The socket is bound before anything
    else, so that a port in use is one clear error and ``port=0`` gets a free port, whose address is printed."""
    import uvicorn  # only here: the routes and their tests need no server

    runs = Path(runs)
    if runs.exists() and not runs.is_dir():
        raise NotADirectoryError(f"--runs {runs} is a file, not a folder of runs")
    if not host:
        raise ValueError("--host must be an IPv4 address such as 127.0.0.1 (an empty one means every address)")
    models = find_models(model_paths, runs, report)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(128)  # from now on a browser's connection waits in the queue, even before uvicorn runs
    except OSError as error:
        listener.close()
        raise OSError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    host, bound_port = listener.getsockname()  # the address itself: "127.1" or "2130706433" listens on 127.0.0.1
    url = f"http://{host}:{bound_port}/"
    if not is_loopback(host):
        report(f"warning: listening on {host}: anyone who can reach this computer can use the playground")
    if models:
        for served in models:
            accuracy = "" if served.test_accuracy is None else f", test accuracy {served.test_accuracy:.4f}"
            report(f"model {served.id}: {served.name} ({served.listing()['kind']}{accuracy})")
    else:
        report(f"no model under {runs}/: the page offers to train the notebook's classifier there")
    report(f"nablanet playground at {url} (Ctrl-C stops it)")
    one_blas_thread()  # requests and trainings side by side, each on one core (see turns.py)
    app = create_app(models, runs, host, report=lambda line: report(f"error: {line}"), max_sessions=max_sessions)
    logging.getLogger("uvicorn.error").addFilter(_quiet_shutdown)
    config = uvicorn.Config(
        app, http=_protocol_with_deadline(), log_level="warning", access_log=False, timeout_graceful_shutdown=1
    )
    if open_browser:
        threading.Timer(0.5, webbrowser.open, [url]).start()

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):  # Ctrl-C, SIGTERM: the event streams end first, then uvicorn stops
            app.state.playground.stopping = True
            super().handle_exit(sig, frame)

    Server(config).run(sockets=[listener])
