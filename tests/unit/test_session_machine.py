"""The booth session state machine: the table, read exhaustively, and random walks."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from signaling.session import (
    ACTIVE,
    IN_CALL,
    TRANSITIONS,
    BoothSession,
    IllegalTransition,
    SessionEvent,
    SessionState,
    next_state,
)

S, E = SessionState, SessionEvent


def walk(*events: SessionEvent) -> BoothSession:
    session = BoothSession()
    for event in events:
        session.handle(event)
    return session


def test_happy_path() -> None:
    s = walk(E.CHECK_IN, E.RESERVE, E.ACCEPT, E.MEDIA_UP, E.FOCUS, E.UNFOCUS, E.END)
    assert [state for _, state in s.history] == [
        S.QUEUED, S.RESERVED, S.CONNECTING, S.ON_HOLD, S.FOCUSED, S.ON_HOLD, S.ENDED,
    ]  # fmt: skip


def test_declined_reservation_goes_back_to_queue() -> None:
    assert walk(E.CHECK_IN, E.RESERVE, E.LAPSE).state is S.QUEUED


@pytest.mark.parametrize("lost_in", [S.CONNECTING, S.ON_HOLD, S.FOCUSED])
def test_lost_mid_call_resumes_where_it_was(lost_in: SessionState) -> None:
    path = {
        S.CONNECTING: [E.CHECK_IN, E.RESERVE, E.ACCEPT],
        S.ON_HOLD: [E.CHECK_IN, E.RESERVE, E.ACCEPT, E.MEDIA_UP],
        S.FOCUSED: [E.CHECK_IN, E.RESERVE, E.ACCEPT, E.MEDIA_UP, E.FOCUS],
    }[lost_in]
    s = walk(*path, E.CONNECTION_LOST)
    assert s.state is S.RECONNECTING and s.lost_from is lost_in
    # Media does not pass the server: a signaling blip leaves the call where it was.
    assert s.handle(E.RESUME) is lost_in


def test_lost_while_queued_resumes_in_the_queue() -> None:
    s = walk(E.CHECK_IN, E.CONNECTION_LOST)
    assert s.handle(E.RESUME) is S.QUEUED
    assert s.lost_from is None


def test_cso_lost_requeues_from_any_call_state() -> None:
    for state in (*IN_CALL, S.RECONNECTING):
        assert next_state(state, E.REQUEUE) is S.QUEUED


@pytest.mark.parametrize("state", list(S))
@pytest.mark.parametrize("event", list(E))
def test_every_pair_is_either_in_the_table_or_illegal(
    state: SessionState, event: SessionEvent
) -> None:
    if (state, event) in TRANSITIONS:
        assert next_state(state, event, lost_from=S.ON_HOLD) in S
    else:
        with pytest.raises(IllegalTransition):
            next_state(state, event)


def test_ended_and_idle_are_outside_the_session() -> None:
    assert S.ENDED not in ACTIVE and S.IDLE not in ACTIVE
    assert [k for k in TRANSITIONS if k[0] is S.ENDED] == [(S.ENDED, E.RESET)]
    assert walk(E.CHECK_IN, E.END, E.RESET).state is S.IDLE


class SessionWalk(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.session = BoothSession()

    @rule(event=st.sampled_from(list(E)))
    def fire(self, event: SessionEvent) -> None:
        before = self.session.state
        if self.session.can(event):
            after = self.session.handle(event)
            assert after in S
            if event is E.CONNECTION_LOST:
                assert self.session.lost_from is before
        else:
            with pytest.raises(IllegalTransition):
                self.session.handle(event)
            assert self.session.state is before

    @invariant()
    def lost_from_only_while_reconnecting(self) -> None:
        if self.session.state is not S.RECONNECTING:
            assert self.session.lost_from is None

    @invariant()
    def ended_only_resets(self) -> None:
        # After `ended` the only way on is `reset` to idle (the next participant).
        history = self.session.history
        for (_, state), (event, _) in itertools.pairwise(history):
            if state is S.ENDED:
                assert event is E.RESET


TestSessionWalk = SessionWalk.TestCase
