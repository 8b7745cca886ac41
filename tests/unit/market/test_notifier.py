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
    notifier.publish("x", {})  # scheduled on a loop that is then closed without running it
    old.close()

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

    assert asyncio.run(publish_on_new_loop()) == 1
