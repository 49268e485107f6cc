"""How the Train tab's sessions share one server with the Draw tab: drawing first, trainings by turns.

A classroom is 30 students drawing (a prediction every half second each) while 10 others train. Left
alone, 10 training threads, each computing its epochs and its page's pictures as fast as it can, keep the
2 cores and Python's one interpreter lock busy, and a prediction of a few milliseconds waits behind them
for most of a second (``benchmarks/classroom_load.py``; the README's "A classroom on one server" has the
figures). :class:`Turns` orders that work:

* **Drawing first.** While a prediction (or an evaluation) is under way or waiting, no session starts a
  batch: a training thread gives its place up at the end of its batch and waits until no drawing is left.
* **One at a time, in turn.** At most ``at_once`` sessions compute at once; the others wait, first come
  first served, outside the interpreter lock (more threads computing at once would only wait for the lock,
  and make everyone else wait longer for it). A session holds its place while it computes and gives it up
  whenever it would wait anyway (its pace, a pause), and at the end of a batch after ``SLICE`` seconds
  if another session is waiting.
* **Lower priority.** A training thread asks the operating system for a lower priority (``TRAINING_NICENESS``),
  so that on cores busy with other work the threads that answer requests run first.
* **Pictures shared out.** A session's page gets a new snapshot (whose picture of the plane costs more than
  an epoch) at most every :meth:`snapshot_seconds`: ``SNAPSHOT_SECONDS`` × the number of sessions training,
  so that all the pages together get about 1 / ``SNAPSHOT_SECONDS`` snapshots a second, however many train.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time

SLICE = 0.02  # seconds a session computes before it lets a waiting one have its turn
SNAPSHOT_SECONDS = 0.05  # one session alone: a snapshot every 0.05 s at most (20 a second)
TRAINING_NICENESS = 10  # how much lower a training thread's priority is than the server's (for the system)


class Turns:
    """The places where Train-tab sessions compute, ``at_once`` of them, after the drawings.

    A training thread calls :meth:`take` before it computes, :meth:`give` before it waits for anything,
    and :meth:`switch` between batches; a prediction runs inside :meth:`drawing`. ``at_once=None``:
    no limit and no priority (each session computes whenever it likes, as a session alone does).
    """

    def __init__(self, at_once: int | None = 1):
        if at_once is not None and (isinstance(at_once, bool) or not isinstance(at_once, int) or at_once < 1):
            raise ValueError(f"at_once must be a positive integer or None (no limit), received: {at_once!r}")
        self.at_once = at_once
        self._condition = threading.Condition()
        self._waiting: collections.deque[int] = collections.deque()  # thread ids, first come first
        self._computing: dict[int, float] = {}  # thread id → when it took its place
        self._drawings = 0
        self.training = 0  # sessions whose training thread is running (computing, waiting, pacing or paused)

    @contextlib.contextmanager
    def drawing(self):
        """Around a prediction: no session starts a batch until it (and every other drawing) is done."""
        with self._condition:
            self._drawings += 1
        try:
            yield
        finally:
            with self._condition:
                self._drawings -= 1
                if not self._drawings:
                    self._condition.notify_all()

    def take(self) -> None:
        """Wait for a place: no drawing under way, fewer than ``at_once`` computing, and no one waiting
        longer. Called by a training thread that holds no place."""
        if self.at_once is None:
            return
        me = threading.get_ident()
        with self._condition:
            self._waiting.append(me)
            while self._drawings or len(self._computing) >= self.at_once or self._waiting[0] != me:
                self._condition.wait()
            self._waiting.popleft()
            self._computing[me] = time.monotonic()
            self._condition.notify_all()  # the next in line may have a place too

    def give(self) -> None:
        """Give this thread's place up (none held: nothing happens)."""
        if self.at_once is None:
            return
        with self._condition:
            if self._computing.pop(threading.get_ident(), None) is not None:
                self._condition.notify_all()

    def switch(self) -> None:
        """Between two batches: give the place up and wait for the next turn if a drawing is under way, or if
        another session waits and this one has computed for ``SLICE`` seconds."""
        if self.at_once is None:
            return
        with self._condition:
            since = self._computing.get(threading.get_ident())
            due = since is None or self._drawings or (self._waiting and time.monotonic() - since >= SLICE)
        if due:
            self.give()
            self.take()

    def snapshot_seconds(self) -> float:
        """The least time between two snapshots of one session: ``SNAPSHOT_SECONDS`` × the sessions training
        (a paused one included: its thread is there, waiting)."""
        return SNAPSHOT_SECONDS * max(1, self.training)

    @contextlib.contextmanager
    def trainer(self):
        """Around a training thread's whole run: counted among those training, holding a place while inside
        (given up when it ends, however it ends)."""
        with self._condition:
            self.training += 1
        if self.at_once is not None:
            lower_priority()
        self.take()
        try:
            yield
        finally:
            self.give()
            with self._condition:
                self.training -= 1


def lower_priority() -> None:
    """Lower the calling thread's priority by ``TRAINING_NICENESS`` (its "nice" value, at most 19), where
    each thread has its own (Linux); elsewhere nothing happens."""
    with contextlib.suppress(AttributeError, OSError):  # no os.setpriority (Windows), or no thread priorities
        me = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + TRAINING_NICENESS))


def one_blas_thread() -> None:
    """Hold the BLAS that NumPy computes with (OpenBLAS, MKL, BLIS…) to one thread, in this whole process, with
    threadpoolctl.

    Why: a prediction's product W x of a 256×784 layer is split over OpenBLAS's threads, one per core, which
    wait for each other; on a machine whose cores are all busy (ten trainings, or anyone else's work) the
    one that is not scheduled holds the others up: in one run each of ``benchmarks/classroom_load.py`` on a
    busy 2-core machine (load average 16), OpenBLAS's two threads made the predictions' median 80 ms and
    their 99th percentile 489 ms, and the trainings 1.2 epochs/s a session; one thread: 12 ms, 100 ms and
    36 epochs/s. A server's requests run side by side anyway; a product this small gains nothing from a
    second core.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
