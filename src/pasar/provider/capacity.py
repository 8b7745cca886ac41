"""The provider's side of the capacity proofs: answer the market's challenges from the feed.

A ``capacity.challenge`` event names the provider, a seed and the size; the agent computes
``X_steps`` (:func:`pasar.capacity.proof.solve`: numpy on the CPU, torch on the GPU the score
was measured on), uploads it as a blob and signs ``capacity.answer`` with its sha256. It works
on its own thread, one challenge at a time, so the feed keeps flowing (a lease that arrives
meanwhile still starts). A provider whose score came from a GPU it does not have cannot
answer in time: the challenge is sized to the claimed rate.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pasar.core.capacity import MODULUS, N_MAX, STEPS_MAX
from pasar.core.errors import PasarError
from pasar.provider.market_api import MarketAPI

log = logging.getLogger("pasar.provider.capacity")


class CapacityProver:
    """Answers this provider's challenges; :meth:`on_event` is called by the agent's feed."""

    def __init__(
        self,
        api: MarketAPI,
        home: Path,
        device: str = "cpu",
        stop: threading.Event | None = None,
    ) -> None:
        self.api = api
        self.home = home
        self.device = device
        self.stop = stop  # the agent's: a proof in progress is abandoned when it stops
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._threads: list[threading.Thread] = []
        self.answered: list[str] = []  # for tests and status

    def on_event(self, event: Mapping[str, Any]) -> threading.Thread | None:
        """Start answering a challenge addressed to us (None when it is not ours, already
        seen, or malformed)."""
        challenge_id = event.get("challenge_id")
        if event.get("provider") != self.api.id or not isinstance(challenge_id, str):
            return None
        seed, n, steps = event.get("seed"), event.get("n"), event.get("steps")
        ints = (seed, n, steps)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
            return None
        assert isinstance(seed, int) and isinstance(n, int) and isinstance(steps, int)
        if event.get("modulus") != MODULUS or not (1 <= n <= N_MAX and 1 <= steps <= STEPS_MAX):
            log.warning("ignoring a capacity challenge this agent cannot compute: %s", event)
            return None
        with self._lock:
            if challenge_id in self._seen:
                return None
            self._seen.add(challenge_id)
        thread = threading.Thread(
            target=self.answer,
            args=(challenge_id, seed, n, steps),
            name=f"capacity-{challenge_id}",
            daemon=True,
        )
        thread.start()
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        return thread

    def join(self, timeout_s: float) -> None:
        """Wait for proofs in progress to end (they stop between two steps once the agent's
        ``stop`` is set). Why: a process that exits while another thread is inside an
        OpenBLAS product hangs for ever in OpenBLAS's own exit handler, waiting for that
        product's worker threads; a stopping agent must let the product finish first."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def answer(self, challenge_id: str, seed: int, n: int, steps: int) -> None:
        """Compute, upload and answer one challenge (errors are logged: a miss is the market's
        to record, and the next challenge follows)."""
        # numpy (~0.1 s of CPU to import) loads with the first challenge, not at the agent's start
        from pasar.capacity.proof import ProofCancelledError, answer_bytes, solve

        path = self.home / f".capacity-{challenge_id}.bin"
        try:
            data = answer_bytes(solve(seed, n, steps, device=self.device, stop=self.stop))
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            entry = self.api.put_blob(path)
            self.api.capacity_answer(challenge_id, entry.sha256)
            self.answered.append(challenge_id)
            log.info("answered capacity challenge %s (n=%d, %d steps)", challenge_id, n, steps)
        except ProofCancelledError:
            log.info("capacity challenge %s abandoned: the agent is stopping", challenge_id)
        except PasarError as exc:
            log.warning("capacity challenge %s: %s", challenge_id, exc.message)
        except Exception:  # a bug must not kill the agent; the market records a miss
            log.exception("capacity challenge %s failed", challenge_id)
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
