"""Waking the engine loop at a step's simulated end to within tens of microseconds.

`asyncio.sleep` is too coarse for that: the selector rounds its timeout up to whole
milliseconds (so a wake can come up to 1 ms late, and a wake a hair early costs another full
millisecond), and a halted vCPU takes a further ~0.3 ms to run again. Measured on a 2-core VM,
a 10 ms `asyncio.sleep` ends 1.3 ms late; every step of a streaming request paid that.

On Linux the timer is a timerfd on CLOCK_MONOTONIC (the clock `loop.time()` reads), armed a
little before the deadline: `lead` tracks how late the kernel actually wakes us (moving
average plus a margin), and the remaining microseconds are covered by yielding to the loop
(`asyncio.sleep(0)`), so handlers keep running meanwhile. Elsewhere the wait sleeps until 2 ms
before the deadline and yields from there (about 2 ms of yielding per wait). Either way, a
wait shorter than `lead` just yields once: a fast-forwarded engine (--speed 1000) never spins.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import sys
import time

FALLBACK_MARGIN_S = 0.002
INITIAL_LEAD_S = 0.0005
MIN_LEAD_S = 0.00005
MAX_LEAD_S = 0.002
LEAD_MARGIN_S = 0.0001  # how far before the deadline we aim to wake, beyond the average delay

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = 0o2000000
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _open_timerfd() -> tuple[int, ctypes.CDLL] | None:
    """A non-blocking CLOCK_MONOTONIC timerfd, or None where there is none (not Linux, no libc)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
    except (OSError, AttributeError):
        return None
    return (fd, libc) if fd >= 0 else None


class StepClock:
    """`await clock.sleep_until(deadline)` with `deadline` in `loop.time()` seconds."""

    def __init__(self, loop: asyncio.AbstractEventLoop, use_timerfd: bool = True) -> None:
        self.loop = loop
        self.lead = INITIAL_LEAD_S
        self._waiter: asyncio.Future[None] | None = None
        opened = _open_timerfd() if use_timerfd else None
        self._libc: ctypes.CDLL | None
        self._fd, self._libc = opened if opened else (-1, None)
        if self._fd >= 0:
            loop.add_reader(self._fd, self._fired)

    @property
    def precise(self) -> bool:
        return self._fd >= 0

    def close(self) -> None:
        if self._fd >= 0:
            self.loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1

    def _fired(self) -> None:
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _arm(self, monotonic_at: float) -> None:
        sec = int(monotonic_at)
        spec = _Itimerspec(_Timespec(0, 0), _Timespec(sec, int((monotonic_at - sec) * 1e9)))
        if self._libc.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:  # type: ignore[union-attr]  # armed only when the timerfd (and libc) opened
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_settime: {os.strerror(err)}")

    async def sleep_until(self, deadline: float) -> None:
        loop = self.loop
        remaining = deadline - loop.time()
        if self._fd >= 0:
            if remaining <= self.lead:
                await asyncio.sleep(0)
                return
            wake_at = deadline - self.lead
            self._waiter = loop.create_future()
            self._arm(wake_at - loop.time() + time.monotonic())
            try:
                await self._waiter
            finally:
                self._waiter = None
            delay = loop.time() - wake_at
            lead = 0.9 * self.lead + 0.1 * (delay + LEAD_MARGIN_S)
            self.lead = MIN_LEAD_S if lead < MIN_LEAD_S else MAX_LEAD_S if lead > MAX_LEAD_S else lead
        elif remaining > FALLBACK_MARGIN_S:
            await asyncio.sleep(remaining - FALLBACK_MARGIN_S)
        else:
            await asyncio.sleep(0)
            return
        while loop.time() < deadline:
            await asyncio.sleep(0)
