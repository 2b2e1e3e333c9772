"""Waking the consumers that long-poll a pull endpoint."""

from __future__ import annotations

import asyncio

from gateway.outbox.pull import Wakeup


async def test_a_wait_with_nothing_to_wake_it_ends_at_its_timeout() -> None:
    wakeup = Wakeup()
    await asyncio.wait_for(Wakeup.wait(wakeup.arm(), 0.01), 5)


async def test_one_wake_up_wakes_every_waiter_and_is_not_missed_between_arm_and_wait() -> None:
    wakeup = Wakeup()
    first, second = wakeup.arm(), wakeup.arm()
    assert first is second
    waiters = [asyncio.create_task(Wakeup.wait(first, 60)) for _ in range(3)]
    await asyncio.sleep(0)
    wakeup.set()
    await asyncio.wait_for(asyncio.gather(*waiters), 5)

    armed = wakeup.arm()
    assert armed is not first, "a wake-up is used once; the next look arms a new one"
    wakeup.set()
    await asyncio.wait_for(Wakeup.wait(armed, 60), 5)


def test_a_wake_up_with_no_one_armed_is_harmless() -> None:
    Wakeup().set()
