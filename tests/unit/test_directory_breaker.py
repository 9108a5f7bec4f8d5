"""The membership directory's circuit breaker, as a state machine against a plain model:
closed until `failures` failures in a row, open (nothing goes out) for `open_seconds`,
then one trial at a time until one succeeds (closed) or fails (open again)."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from server.adapters.directory import Circuit, CircuitBreaker

FAILURES, OPEN_S = 3, 30.0


class Breaker(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.breaker = CircuitBreaker(FAILURES, OPEN_S, clock=lambda: self.now)
        # The model: failures in a row, when it opened (None: closed), a trial out.
        self.in_a_row = 0
        self.opened: float | None = None
        self.trial = False
        self.out = 0  # requests let out and not yet answered

    @rule(seconds=st.floats(0, 45))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def ask(self) -> None:
        expired = self.opened is not None and self.now - self.opened >= OPEN_S
        expected = self.opened is None or (expired and not self.trial)
        assert self.breaker.allow() is expected
        if expected:
            self.out += 1
            if self.opened is not None:
                self.trial = True

    @rule(ok=st.booleans())
    def answer(self, ok: bool) -> None:
        if not self.out:
            return
        self.out -= 1
        if ok:
            self.breaker.succeeded()
            self.in_a_row, self.opened, self.trial = 0, None, False
            return
        self.breaker.failed()
        self.in_a_row += 1
        if self.trial or self.in_a_row >= FAILURES:
            self.opened = self.now
        self.trial = False

    @invariant()
    def state_as_modelled(self) -> None:
        if self.opened is None:
            assert self.breaker.state is Circuit.CLOSED
        elif self.breaker.state is Circuit.OPEN:
            assert self.breaker.retry_in() == pytest.approx(
                max(0.0, OPEN_S - (self.now - self.opened))
            )
        else:
            assert self.breaker.state is Circuit.HALF_OPEN and self.now - self.opened >= OPEN_S


Breaker.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestBreaker = Breaker.TestCase


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(0, 30)
    with pytest.raises(ValueError):
        CircuitBreaker(3, 0)
