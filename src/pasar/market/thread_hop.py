"""One thread hop for a blocking call, from the event loop and back, at the least cost per call.

Why not ``loop.run_in_executor``: for ``POST /v1/orders`` (then a worker thread parsed,
verified, applied and waited for the group commit; now only its slow commits and its
attachments' writes hop) the executor's bookkeeping was a tenth of the event loop's time under
load — a ``concurrent.futures.Future`` with its condition, the executor's lock, semaphore and
thread-count check, then ``wrap_future`` chaining that future to an asyncio
one with callbacks both ways. Here a call is one ``SimpleQueue.put`` (C, no Python lock) and,
when it is done, one ``call_soon_threadsafe`` that resolves the asyncio future directly — and
calls that finish while the loop has not yet run that callback share it (an :class:`_Inbox`
per loop): under load each ``call_soon_threadsafe`` is a write to the loop's self-pipe and a
wake-up of the loop, which several finished calls need only once.

The threads are daemons started on first use, all at once (``threads`` of them, idle ones cost
a blocked ``get``): a call never waits for a thread to start, and a caller blocked on a commit
holds only its own thread. The answer still comes back only when the call has returned.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """On the loop: hand the outcome to the waiting coroutine (unless it stopped waiting)."""
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class _Inbox:
    """The finished calls of one event loop, handed to it by one scheduled callback per burst."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # weakly: the hop's map from loops to inboxes must not keep a finished loop alive
        self._loop = weakref.ref(loop)
        self._outcomes: collections.deque[_Outcome] = collections.deque()
        self._pending = False  # a drain is scheduled and has not started yet

    def put(self, future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        """From a worker thread: deliver one outcome (scheduling a drain unless one is due)."""
        self._outcomes.append((future, result, error))
        if not self._pending:
            self._pending = True
            loop = self._loop()
            if loop is None:
                return  # the loop is gone: nobody is waiting any more
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        """On the loop: resolve every outcome delivered so far. The flag is cleared first, so
        an outcome put from here on is taken by this pass or schedules the next one."""
        self._pending = False
        outcomes = self._outcomes
        while outcomes:
            _resolve(*outcomes.popleft())


_Job = tuple[_Inbox, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class ThreadHop:
    """``await hop.run(fn, *args)``: ``fn(*args)`` in one of ``threads`` worker threads."""

    def __init__(self, threads: int, name: str) -> None:
        self.threads = threads
        self.name = name
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._started = False
        self._start_lock = threading.Lock()
        self._inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Inbox] = (
            weakref.WeakKeyDictionary()
        )

    def _start(self) -> None:
        with self._start_lock:
            if self._started:
                return
            for i in range(self.threads):
                threading.Thread(target=self._work, name=f"{self.name}_{i}", daemon=True).start()
            self._started = True

    def _work(self) -> None:
        get = self._jobs.get
        while True:
            inbox, future, fn, args = get()
            if future.cancelled():  # its caller stopped waiting before it started: skip it
                continue
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn(*args)
            except BaseException as exc:  # the caller re-raises it
                error = exc
            inbox.put(future, result, error)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread; its result, or its exception raised here."""
        if not self._started:
            self._start()
        loop = asyncio.get_running_loop()
        inbox = self._inboxes.get(loop)
        if inbox is None:
            inbox = self._inboxes[loop] = _Inbox(loop)
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((inbox, future, fn, args))
        return await future
