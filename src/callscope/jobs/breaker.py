"""A circuit breaker over the AI provider's recent health. Pure: the clock is injected.

closed     every call goes; each outcome lands in a sliding window: the last `window_calls`
           outcomes of the last `window_s` seconds. Once it holds `min_calls` outcomes and
           at least `failure_rate` of them failed, the breaker opens. (The count bounds how
           long a busy worker takes to notice: at 60 calls a second, 10 s of healthy
           outcomes would otherwise outweigh hundreds of failures.)
open       no call goes for `open_s` seconds (doubled after a failed probe, up to 2x).
half_open  one probe call goes; its success closes the breaker (with an empty window), its
           failure opens it again.

Written here rather than taken from aiobreaker or purgatory: both open after N consecutive
failures, which a healthy provider failing 25 % of the time at hundreds of calls a second
trips now and then; this one trips on a failure *rate*, and it is fifty lines.
"""

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

MAX_OPEN_DOUBLINGS: Final = 1  # open for at most twice open_s: a provider back is soon seen


class BreakerState(StrEnum):
    closed = "closed"
    open = "open"
    half_open = "half_open"


class Pass(StrEnum):
    """What `admit` let through: an ordinary call, or the one probe of a half-open breaker."""

    call = "call"
    probe = "probe"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    window_s: float
    window_calls: int
    failure_rate: float
    min_calls: int
    open_s: float


@dataclass(frozen=True, slots=True)
class BreakerChange:
    """What a state change is told with: the window's failure share when it happened."""

    state: BreakerState
    previous: BreakerState
    failure_rate: float
    calls_in_window: int
    retry_in_s: float  # until the next probe; 0 unless open


class CircuitBreaker:
    def __init__(
        self,
        policy: BreakerPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerChange], None] = lambda _change: None,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._on_change = on_change
        self._outcomes: deque[tuple[float, bool]] = deque()  # (when, failed)
        self._failures = 0
        self._state = BreakerState.closed
        self._opened_at = 0.0
        self._open_for = policy.open_s
        self._probe_out = False

    @property
    def state(self) -> BreakerState:
        if self._state == BreakerState.open and self._clock() >= self._opened_at + self._open_for:
            self._change(BreakerState.half_open)
        return self._state

    def admit(self) -> Pass | float:
        """A pass to call the provider now (then `record` its outcome, or `withdraw` it when
        the call did not happen), or the seconds after which to ask again."""
        state = self.state
        if state == BreakerState.closed:
            return Pass.call
        if state == BreakerState.half_open and not self._probe_out:
            self._probe_out = True
            return Pass.probe
        if state == BreakerState.open:
            return max(0.0, self._opened_at + self._open_for - self._clock())
        return self._policy.open_s / 4  # the probe is out: its outcome decides soon

    def record(self, admitted: Pass, *, failed: bool) -> None:
        """The outcome of a provider call made with `admitted`."""
        if admitted == Pass.probe:
            self._probe_out = False
            if failed:
                longest = self._policy.open_s * 2**MAX_OPEN_DOUBLINGS
                self._open_for = min(2 * self._open_for, longest)
                self._open(self._clock())
            else:
                self._open_for = self._policy.open_s
                self._change(BreakerState.closed)
            return
        if self.state != BreakerState.closed:
            return  # let through before the breaker opened: the window that saw it is gone
        now = self._clock()
        if len(self._outcomes) == self._policy.window_calls:
            self._failures -= self._outcomes.popleft()[1]
        self._outcomes.append((now, failed))
        self._failures += failed
        self._forget_before(now - self._policy.window_s)
        enough = len(self._outcomes) >= self._policy.min_calls
        if enough and self._rate() >= self._policy.failure_rate:
            self._open(now)

    def withdraw(self, admitted: Pass) -> None:
        """A pass that was not used (the job stopped before calling): a probe is handed back."""
        if admitted == Pass.probe:
            self._probe_out = False

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._change(BreakerState.open)

    def _forget_before(self, horizon: float) -> None:
        while self._outcomes and self._outcomes[0][0] < horizon:
            _, failed = self._outcomes.popleft()
            self._failures -= failed

    def _clear(self) -> None:
        self._outcomes.clear()
        self._failures = 0

    def _rate(self) -> float:
        return self._failures / len(self._outcomes) if self._outcomes else 0.0

    def _change(self, state: BreakerState) -> None:
        previous, self._state = self._state, state
        retry_in = self._open_for if state == BreakerState.open else 0.0
        change = BreakerChange(state, previous, self._rate(), len(self._outcomes), retry_in)
        if state == BreakerState.open:
            self._clear()  # a fresh window once it closes again
        self._on_change(change)
