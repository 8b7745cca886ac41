"""The notifier wakes waiters for events published from other threads, one wake-up per burst."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from pasar.market.notifier import Notifier


def test_a_burst_of_publishes_schedules_one_wake_up_and_every_waiter_sees_every_event() -> None:
    async def scenario() -> tuple[list[int], int, list[int]]:
        loop = asyncio.get_running_loop()
        notifier = Notifier()
        notifier.bind(loop)
        scheduled = 0
        original = loop.call_soon_threadsafe

        def counting(callback: Any, *args: Any) -> Any:
            nonlocal scheduled
            scheduled += 1
            return original(callback, *args)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        waiter = asyncio.create_task(notifier.wait(0, timeout_s=10, order="o-1"))
        await asyncio.sleep(0)  # the waiter is waiting
        # the loop is not running callbacks while the thread publishes: one wake-up for all
        burst = threading.Thread(
            target=lambda: [notifier.publish("x", {}, orders=["o-1"]) for _ in range(5)]
        )
        burst.start()
        burst.join()
        first = [e.seq for e in await waiter]
        # the wake-up ran: the next publish schedules another, and a new waiter sees it
        later = asyncio.create_task(notifier.wait(5, timeout_s=10, order="o-1"))
        await asyncio.sleep(0)
        threading.Thread(target=lambda: notifier.publish("y", {}, orders=["o-1"])).start()
        second = [e.seq for e in await later]
        return first, scheduled, second

    first, scheduled, second = asyncio.run(scenario())
    assert first == [1, 2, 3, 4, 5] and second == [6]
    assert scheduled == 2


def test_binding_a_new_loop_forgets_a_wake_up_the_old_one_never_ran() -> None:
    notifier = Notifier()
    old = asyncio.new_event_loop()
    notifier.bind(old)
    waiter = old.create_task(notifier.wait(0, timeout_s=10, order="o-1"))
    old.run_until_complete(asyncio.sleep(0))  # the waiter waits (counted) on the old loop
    notifier.publish("x", {})  # a wake-up scheduled on the old loop, which does not run it

    async def publish_on_new_loop() -> int:
        loop = asyncio.get_running_loop()
        notifier.bind(loop)
        scheduled = []
        original = loop.call_soon_threadsafe
        loop.call_soon_threadsafe = (  # type: ignore[method-assign]
            lambda callback, *args: scheduled.append(1) or original(callback, *args)
        )
        notifier.publish("y", {})
        return len(scheduled)

    try:
        assert asyncio.run(publish_on_new_loop()) == 1
    finally:
        waiter.cancel()
        old.run_until_complete(asyncio.gather(waiter, return_exceptions=True))
        old.close()


def test_with_nobody_waiting_a_publish_wakes_nothing_and_a_later_wait_sees_it() -> None:
    """No long-poll open: no wake-up is scheduled at all (a self-pipe write and a loop wake-up
    per burst saved); a wait that starts afterwards still returns the event at once, and a
    waiter that is waiting when an event comes is woken."""

    async def scenario() -> tuple[int, list[int], list[int]]:
        loop = asyncio.get_running_loop()
        notifier = Notifier()
        notifier.bind(loop)
        scheduled = []
        original = loop.call_soon_threadsafe
        loop.call_soon_threadsafe = (  # type: ignore[method-assign]
            lambda callback, *args: scheduled.append(1) or original(callback, *args)
        )
        threading.Thread(target=lambda: notifier.publish("x", {}, orders=["o-1"])).start()
        await asyncio.sleep(0.05)
        quiet = len(scheduled)
        at_once = [e.seq for e in await notifier.wait(0, timeout_s=10, order="o-1")]
        waiter = asyncio.create_task(notifier.wait(1, timeout_s=10, order="o-1"))
        await asyncio.sleep(0)
        threading.Thread(target=lambda: notifier.publish("y", {}, orders=["o-1"])).start()
        woken = [e.seq for e in await waiter]
        return quiet, at_once, woken

    quiet, at_once, woken = asyncio.run(scenario())
    assert quiet == 0 and at_once == [1] and woken == [2]
