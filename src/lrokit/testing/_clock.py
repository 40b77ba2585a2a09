"""Instant time for tests: a fake monotonic clock with a sleeper that records and returns."""

from __future__ import annotations

import asyncio
import heapq
import threading

__all__ = ["AsyncFakeClock", "FakeClock"]


def _checked(seconds: float) -> float:
    if seconds < 0:
        # lrokit never asks for a negative delay: one would be a bug worth failing a test.
        raise AssertionError(f"a sleep of {seconds} s was requested")
    return seconds


class FakeClock:
    """A monotonic clock and a sleeper for :class:`~lrokit.Pipeline` sharing one fake time.

    ``Pipeline(endpoint, clock=clock, sleep=clock.sleep)``: every wait then returns at once,
    the clock moves on by exactly the delays slept, and deadlines (``timeout=``) are measured
    on it. Each delay asked for is recorded in :attr:`sleeps`. Safe to share between threads.

    Args:
        start: the clock's initial reading in seconds.

    Attributes:
        now: the current time in seconds; :meth:`advance` moves it (or assign it).
        sleeps: every delay a sleep was asked for, in order (an interrupted one too).
        cancel_after: ``(count, event)``: once ``count`` sleeps have been asked for, set
            ``event`` and report that sleep as interrupted, the way a ``cancel`` event set by
            another thread mid-sleep is reported (set it back to None to stop).
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.cancel_after: tuple[int, threading.Event] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> float:
        """The current time (the clock's interface)."""
        return self.now

    def sleep(self, seconds: float, cancel: threading.Event | None = None) -> bool:
        """Record the delay and move the clock on by it, without waiting.

        Returns True, without moving the clock, when ``cancel`` is already set, and True
        after moving it when this sleep reaches ``cancel_after``; otherwise False.
        """
        seconds = _checked(seconds)
        if cancel is not None and cancel.is_set():
            return True
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds
            stop = self.cancel_after
            if stop is not None and len(self.sleeps) >= stop[0]:
                stop[1].set()
                return True
        return False

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass without a sleep (a slow request, work done meanwhile)."""
        with self._lock:
            self.now += _checked(seconds)

    @property
    def slept(self) -> float:
        """The total of all recorded sleeps in seconds."""
        return sum(self.sleeps)

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now}, sleeps={self.sleeps})"


class AsyncFakeClock:
    """A monotonic clock and an async sleeper for :class:`~lrokit.AsyncPipeline`.

    ``AsyncPipeline(endpoint, sender, clock=clock, sleep=clock.sleep)``. Time is virtual and
    shared by every task: a sleep returns when the clock reaches its end. Once every task has
    gone as far as it can (the event loop has turned :attr:`SETTLE_TURNS` times), the earliest
    sleeper wakes and the clock jumps to its time, so concurrent waits end in the order of
    their times, at once, as if real time had passed. Use it on one event loop at a time.

    Args:
        start: the clock's initial reading in seconds.

    Attributes:
        now: the current virtual time in seconds.
        sleeps: every delay a sleep was asked for, in order.
        cancel_after: ``(count, event)``: once ``count`` sleeps have been asked for and that
            one has ended, set ``event`` and report the sleep as interrupted (a wait stopped
            by "another task", deterministically). None to stop.
    """

    #: Event-loop turns given to the other tasks before virtual time moves on.
    SETTLE_TURNS = 20

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.cancel_after: tuple[int, asyncio.Event] | None = None
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._count = 0
        self._advancer: asyncio.Task[None] | None = None

    def __call__(self) -> float:
        """The current virtual time (the clock's interface)."""
        return self.now

    async def sleep(self, seconds: float, cancel: asyncio.Event | None = None) -> bool:
        """Record the delay and return when virtual time reaches its end.

        Returns True when ``cancel`` was set (before, or by the time the sleep ends) or when
        this sleep reaches ``cancel_after``; otherwise False. Cancelling the sleeping task
        works as with a real sleep.
        """
        seconds = _checked(seconds)
        if cancel is not None and cancel.is_set():
            return True
        self.sleeps.append(seconds)
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()
        self._count += 1
        heapq.heappush(self._timers, (self.now + seconds, self._count, wake))
        if self._advancer is None or self._advancer.done():
            self._advancer = loop.create_task(self._advance())
        await wake
        stop = self.cancel_after
        if stop is not None and len(self.sleeps) >= stop[0]:
            stop[1].set()
            return True
        return cancel is not None and cancel.is_set()

    def advance(self, seconds: float) -> None:
        """Move virtual time on by ``seconds`` now, waking the sleeps that end by then.

        Call it from the event loop's thread (a test's coroutine).
        """
        self.now += _checked(seconds)
        timers = self._timers
        while timers and timers[0][0] <= self.now:
            _, _, wake = heapq.heappop(timers)
            if not wake.done():  # a cancelled sleeper's future is done already
                wake.set_result(None)

    @property
    def slept(self) -> float:
        """The total of all recorded sleeps in seconds."""
        return sum(self.sleeps)

    async def _advance(self) -> None:
        while self._timers:
            for _ in range(self.SETTLE_TURNS):
                await asyncio.sleep(0)
            if not self._timers:
                return
            when, _, wake = heapq.heappop(self._timers)
            if not wake.done():
                self.now = max(self.now, when)
                wake.set_result(None)

    def __repr__(self) -> str:
        return f"AsyncFakeClock(now={self.now}, sleeps={self.sleeps})"
