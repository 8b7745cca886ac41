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


def test_calls_finishing_together_share_one_wake_up_of_the_loop() -> None:
    hop = ThreadHop(4, "test-hop-burst")
    release = threading.Event()
    finished = threading.Semaphore(0)

    def work(n: int) -> int:
        release.wait()
        finished.release()
        return n

    async def main() -> tuple[list[int], int]:
        loop = asyncio.get_running_loop()
        scheduled = []
        original = loop.call_soon_threadsafe
        loop.call_soon_threadsafe = (  # type: ignore[method-assign]
            lambda callback, *args: scheduled.append(1) or original(callback, *args)
        )
        calls = asyncio.gather(*(hop.run(work, n) for n in range(4)))
        await asyncio.sleep(0)  # every call is queued
        release.set()
        for _ in range(4):  # the loop runs no callback while all four finish
            finished.acquire()
        return await calls, len(scheduled)

    answers, scheduled = asyncio.run(main())
    assert answers == [0, 1, 2, 3]
    assert scheduled <= 2  # one, or two if the first drain was scheduled before the last put


def test_one_hop_serves_one_loop_after_another() -> None:
    hop = ThreadHop(1, "test-hop-loops")
    assert [asyncio.run(hop.run(lambda i=i: i)) for i in range(3)] == [0, 1, 2]
