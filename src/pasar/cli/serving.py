"""How the long-running agents (``pasar provider start``, ``pasar verifier start``) run in the
foreground: start, print the ready line (``pasar devnet`` and the tests wait for it), run until
SIGTERM or Ctrl-C stops the agent, print that it stopped."""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType
from typing import Protocol


class Agent(Protocol):
    def start(self) -> None: ...

    def run(self) -> None: ...

    def stop(self) -> None: ...


#: libraries whose every request would otherwise be a log line (a long poll is one a second):
#: their warnings and errors still show
QUIET_LOGGERS = ("httpx", "httpcore")


def log_to_stderr() -> None:
    """The agents' log lines on stderr, from before the agent is built: what the agent did
    (won a lease, its job exited, what it earned), not every HTTP request it made."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    if os.environ.get("PASAR_TRACE"):  # each lease's steps, timed (pasar.provider.timeline)
        logging.getLogger("pasar.provider.timeline").setLevel(logging.DEBUG)


def serve(agent: Agent, *, ready: str, stopped: str) -> None:
    """Run ``agent`` in the foreground; ``ready`` and ``stopped`` are printed (flushed) lines."""
    agent.start()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        agent.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(ready, flush=True)
    agent.run()
    print(stopped, flush=True)
    sys.stdout.flush()
