"""StepClock: the engine loop's wait for a step's simulated end."""

from __future__ import annotations

import asyncio
import os

import pytest

from engine_mock.clock import StepClock


@pytest.mark.parametrize("use_timerfd", [True, False], ids=["timerfd", "fallback"])
def test_never_wakes_before_the_deadline(use_timerfd: bool) -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        clock = StepClock(loop, use_timerfd=use_timerfd)
        early = []
        try:
            for wait in (0.003, 0.006, 0.004, 0.01):
                deadline = loop.time() + wait
                await clock.sleep_until(deadline)
                early.append(deadline - loop.time())
        finally:
            clock.close()
        return early

    early = asyncio.run(main())
    assert max(early) <= 0, f"woke {max(early) * 1e6:.0f} us before a deadline"


def test_other_tasks_run_while_the_clock_waits() -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        clock = StepClock(loop)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        try:
            await clock.sleep_until(loop.time() + 0.05)
        finally:
            task.cancel()
            clock.close()
        return ticks

    assert asyncio.run(main()) >= 5


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to count open files")
def test_close_releases_the_timer() -> None:
    async def main() -> tuple[int, int, bool]:
        before = len(os.listdir("/proc/self/fd"))
        clock = StepClock(asyncio.get_running_loop())
        during = len(os.listdir("/proc/self/fd"))
        clock.close()
        return before, during, clock.precise

    before, during, precise_after = asyncio.run(main())
    assert not precise_after
    assert len(os.listdir("/proc/self/fd")) <= before <= during
