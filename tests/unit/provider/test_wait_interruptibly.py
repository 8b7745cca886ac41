"""An agent's main thread waits for its stop in a way a SIGTERM always ends
(:func:`pasar.provider.agent.wait_interruptibly`)."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import pytest

from pasar.provider.agent import wait_interruptibly


def test_a_signal_another_thread_takes_still_ends_the_wait() -> None:
    """The kernel may hand a process's signal to any of its threads; Python runs the handler
    on the main thread only when that thread next runs bytecode. A lock wait without a
    timeout never does (the provider that ignored its SIGTERM until it was killed)."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be set on the main thread")
    stop = threading.Event()
    handled: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        handled.append(signum)
        stop.set()

    previous = signal.signal(signal.SIGUSR1, on_signal)
    other = threading.Thread(target=threading.Event().wait, args=(5.0,), daemon=True)
    other.start()
    assert other.ident is not None
    # the signal goes to the other thread, not to the waiting main thread
    sender = threading.Timer(0.2, signal.pthread_kill, (other.ident, signal.SIGUSR1))
    fired: list[bool] = []

    def give_up() -> None:  # what alone would end a plain stop.wait()
        fired.append(True)
        stop.set()

    watchdog = threading.Timer(10.0, give_up)
    try:
        sender.start()
        watchdog.start()
        wait_interruptibly(stop)
    finally:
        watchdog.cancel()
        sender.cancel()
        signal.signal(signal.SIGUSR1, previous)
    assert handled == [signal.SIGUSR1] and not fired
