"""ThreadHop: a blocking call in a worker thread, its result or its exception back on the loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from pasar.core.errors import PasarError
from pasar.market.thread_hop import ThreadHop


def test_the_call_runs_in_a_worker_thread_and_its_result_comes_back() -> None:
    hop = ThreadHop(2, "test-hop")

    async def main() -> list[tuple[int, str]]:
        def work(n: int) -> tuple[int, str]:
            return n * n, threading.current_thread().name

        return await asyncio.gather(*(hop.run(work, n) for n in range(5)))

    answers = asyncio.run(main())
    assert [a for a, _ in answers] == [0, 1, 4, 9, 16]
    assert all(name.startswith("test-hop_") for _, name in answers)


def test_an_exception_is_raised_to_the_caller_and_the_worker_lives_on() -> None:
    hop = ThreadHop(1, "test-hop-err")

    def refuse() -> None:
        raise PasarError("no", code="invalid_tx", status=422, field="body.x")

    async def main() -> int:
        with pytest.raises(PasarError) as err:
            await hop.run(refuse)
        assert err.value.field == "body.x"
        return await hop.run(lambda: 7)  # the one thread still takes work

    assert asyncio.run(main()) == 7


def test_a_call_whose_caller_stopped_waiting_before_it_started_is_skipped() -> None:
    hop = ThreadHop(1, "test-hop-cancel")
    release = threading.Event()
    ran: list[str] = []

    async def main() -> None:
        blocker = asyncio.ensure_future(hop.run(release.wait))  # holds the only thread
        await asyncio.sleep(0)
        skipped = asyncio.ensure_future(hop.run(ran.append, "skipped"))
        await asyncio.sleep(0)
        skipped.cancel()
        release.set()
        await blocker
        await hop.run(ran.append, "after")

    asyncio.run(main())
    assert ran == ["after"]
