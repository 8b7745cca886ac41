"""What a running lease tells the market besides its receipt: heartbeats and the job's log.

Split from :mod:`pasar.provider.executor` (which runs a lease from start to receipt): answering
the market's challenge once per interval and shipping the job's output in ordered, sealed
chunks are the lease's *reporting*, each with state of its own (the intervals answered, the
log's offset and the batch still being sent), and neither needs to know how the job runs.

The executor keeps thin methods over these (``_heartbeats``, ``_append_log``) because a
verifier's re-run (:mod:`pasar.verifier.rerun`) overrides them: it answers no heartbeat and
keeps its log local. So the log's batching here hands each batch to a ``send`` function rather
than straight to :class:`LeaseLog`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from pasar.api.leases import Challenge
from pasar.core.errors import PasarError
from pasar.crypto.envelope import wall_clock_ms
from pasar.crypto.sealing import seal_log_line
from pasar.provider.market_api import MarketAPI

log = logging.getLogger("pasar.provider.executor")  # the executor's log, as before the split

LOG_FLUSH_S = 0.5
LOG_CHUNK_BYTES = 128 * 1024
# How long a receipt waits for the lease's first heartbeat to have been answered: a lease is
# paid for the intervals its heartbeats verified, so one whose receipt came first is paid nothing
FIRST_BEAT_WAIT_S = 5.0


class Heartbeats:
    """Answers the market's challenge once per interval, from the moment the lease starts
    until ``stopped`` is set or the market says the lease is over.

    ``carried`` is the challenge that came with the lease's view (the feed's ``match``:
    interval 0), answered without asking; ``on_over`` is called when the market says the
    lease ended there (409: settled or cancelled) so the job is stopped too."""

    def __init__(
        self,
        api: MarketAPI,
        lease_id: str,
        *,
        carried: Challenge | None,
        started_at_ms: int,
        stopped: threading.Event,
        on_over: Callable[[], None],
    ) -> None:
        self.api = api
        self.lease_id = lease_id
        self.carried = carried
        self.started_at_ms = started_at_ms
        self.stopped = stopped
        self.on_over = on_over
        self.first = threading.Event()  # the first heartbeat was answered (or given up)

    def run(self) -> None:
        """Answer until the lease is over here (the heartbeat thread's body)."""
        try:
            self._answer_challenges()
        finally:
            self.first.set()

    def wait_first(self) -> None:
        """Before a receipt: the first heartbeat answered (see :data:`FIRST_BEAT_WAIT_S`;
        sent as the lease starts, it almost always is by then)."""
        self.first.wait(FIRST_BEAT_WAIT_S)

    def _answer_challenges(self) -> None:
        """Ask for the interval's challenge, answer it, sleep to the next interval. The first
        one came with the lease when its view carried it: answered without asking. If that
        answer is refused (it came too late), the loop asks for the interval now, as it does
        for every later one."""
        answered: set[int] = set()
        carried = self.carried
        while not self.stopped.is_set():
            if carried is not None:
                challenge, carried = carried, None
            else:
                try:
                    challenge = self.api.challenge(self.lease_id)
                except PasarError as exc:
                    if exc.status in (404, 409):  # the lease is over at the market
                        if exc.status == 409:
                            self.on_over()
                        return
                    self.stopped.wait(1.0)
                    continue
            k = challenge.interval
            if k not in answered:
                try:
                    self.api.heartbeat(
                        self.lease_id,
                        k,
                        challenge.challenge,
                        {"elapsed_s": (wall_clock_ms() - self.started_at_ms) // 1000},
                    )
                    answered.add(k)
                except PasarError as exc:
                    log.warning("heartbeat %s/%d: %s", self.lease_id, k, exc.message)
            self.first.set()
            wait_ms = challenge.next_at_ms - wall_clock_ms() + 50
            self.stopped.wait(max(0.05, wait_ms / 1000))


def pump_logs(lines: Iterable[str], send: Callable[[str], None]) -> str:
    """Hand the job's output to ``send`` in batches while it runs (a batch every
    :data:`LOG_FLUSH_S`, or sooner once :data:`LOG_CHUNK_BYTES` are waiting); returns what is
    left to send once it has ended (for :meth:`LeaseLog.send_later`). ``lines`` yields ``""``
    when nothing came within the flush interval, so a quiet job's last batch still goes."""
    buffer: list[str] = []
    size = 0
    last = time.monotonic()
    for line in lines:
        if line:
            buffer.append(line)
            size += len(line)
        if buffer and (size >= LOG_CHUNK_BYTES or time.monotonic() - last >= LOG_FLUSH_S):
            send("".join(buffer))
            buffer, size, last = [], 0, time.monotonic()
    return "".join(buffer)


class LeaseLog:
    """The lease's log at the market: appended in order, in chunks the market accepts, sealed
    for a sealed job (only its parties may read what it prints)."""

    def __init__(self, api: MarketAPI, lease_id: str) -> None:
        self.api = api
        self.lease_id = lease_id
        self._offset = 0  # the log's size at the market, as far as this lease knows
        self._pending: threading.Thread | None = None  # the job's last lines, being sent

    def append(self, text: str, key: bytes | None) -> None:
        """Append ``text`` (sealed with ``key``, a sealed job's data key) after whatever is
        still being sent. A refused chunk is logged and the rest dropped: the log is the job
        owner's to read, never a reason to fail the lease."""
        self.wait_sent()  # in order: the job's last lines first
        if key is not None:
            text = seal_log_line(text, key)
        data = text.encode("utf-8", errors="replace")
        for start in range(0, len(data), LOG_CHUNK_BYTES):
            chunk = data[start : start + LOG_CHUNK_BYTES].decode("utf-8", errors="replace")
            try:
                result = self.api.append_logs(self.lease_id, self._offset, chunk)
                self._offset = result.size
            except PasarError as exc:
                if exc.code == "offset_mismatch" and exc.hint:
                    self._offset = int(exc.hint.rsplit(" ", 1)[-1])
                else:
                    log.warning("logs for %s: %s", self.lease_id, exc.message)
                    return

    def send_later(self, text: str, send: Callable[[str], None]) -> None:
        """Hand ``text`` to ``send`` on a thread of its own: the last lines of a short job need
        not wait for, nor hold up, its outputs' upload. :meth:`wait_sent` waits for it, and
        :meth:`append` does before anything else is appended."""
        if not text:
            return
        self._pending = threading.Thread(
            target=send, args=(text,), name=f"log-{self.lease_id}", daemon=True
        )
        self._pending.start()

    def wait_sent(self) -> None:
        """Wait for the lines :meth:`send_later` is sending (before a receipt or a release:
        the log is whole before the lease ends)."""
        pending = self._pending
        if pending is not None and pending is not threading.current_thread():
            pending.join()
            self._pending = None
