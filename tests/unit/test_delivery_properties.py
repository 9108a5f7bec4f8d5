"""A property test of the kiosk's outbox and its delivery (booth_client.outbox, .delivery):
captures are taken, the kiosk is killed at any step (mid-write, before an upload, after
the server stored a picture but before the kiosk heard so, mid-report), restarted from
what is on disk, and the server answers ok, retryable, network down, refused for good or
401. Whatever happens, every capture the kiosk reserved ends delivered exactly once or
reported undeliverable, never lost and never both.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from booth_client.delivery import Drainer
from booth_client.outbox import Outbox, OutboxItem
from tests.support.outbox_server import Crash, CrashPlan, FakeServer


class CrashyOutbox(Outbox):
    """The real outbox, with a chance to die before and after each of its writes."""

    def __init__(self, directory: Path, plan: CrashPlan) -> None:
        super().__init__(directory)
        self.plan = plan

    def _around(self, name: str, *args: Any, **kw: Any) -> Any:
        self.plan.step()
        result = getattr(super(), name)(*args, **kw)
        self.plan.step()
        return result

    def reserve(self, *args: Any, **kw: Any) -> OutboxItem:
        return self._around("reserve", *args, **kw)  # type: ignore[no-any-return]

    def attach(self, *args: Any, **kw: Any) -> OutboxItem:
        return self._around("attach", *args, **kw)  # type: ignore[no-any-return]

    def update(self, *args: Any, **kw: Any) -> OutboxItem:
        return self._around("update", *args, **kw)  # type: ignore[no-any-return]

    def remove(self, *args: Any, **kw: Any) -> None:
        self._around("remove", *args, **kw)

    def bury(self, *args: Any, **kw: Any) -> None:
        self._around("bury", *args, **kw)


class OutboxMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="outbox-prop-"))
        # A kill (not a power cut) is what is modelled: writes are atomic by rename, and
        # fsync only slows the exploration down.
        self._fsync, os.fsync = os.fsync, lambda fd: None
        self.loop = asyncio.new_event_loop()
        self.server = FakeServer()
        self.plan = self.server.crash
        self.owed: set[str] = set()  # captures reserved on disk: each must end somewhere
        self.serial = 0
        self._boot()

    def _boot(self) -> None:
        """A (re)started kiosk: only what is on disk survives."""
        self.plan.arm(None)
        self.outbox = CrashyOutbox(self.dir / "outbox", self.plan)
        self.drainer = Drainer(self.outbox, self.server)

    def _run(self, coro: Any) -> bool:
        """Run until done or killed; True if killed (the kiosk is then restarted)."""
        try:
            self.loop.run_until_complete(coro)
        except Crash:
            self._boot()
            return True
        return False

    @rule(crash_at=st.none() | st.integers(1, 4), kind=st.sampled_from(["ktp", "kk"]))
    def capture(self, crash_at: int | None, kind: str) -> None:
        self.serial += 1
        capture_id = f"c{self.serial}"
        self.plan.arm(crash_at)
        try:
            item = self.outbox.reserve("claim-1", kind, capture_id=capture_id, session_id="s1")
        except Crash:
            # Killed inside reserve: owed only if its record made it to disk.
            self._boot()
            if any(i.capture_id == capture_id for i in Outbox(self.dir / "outbox").pending()):
                self.owed.add(capture_id)
            return
        self.owed.add(capture_id)
        try:
            self.outbox.attach(item.item_id, b"\xff\xd8" + capture_id.encode(), {"attempt": 1})
        except Crash:
            self._boot()
        self.plan.arm(None)

    @rule(
        answers=st.lists(
            st.sampled_from(["ok", "ok", "ok", "network", 401, 503, 429, 422, 403]),
            min_size=0,
            max_size=3,
        ),
        crash_at=st.none() | st.integers(1, 8),
        kill=st.sampled_from([None, None, "before_upload", "after_upload"]),
    )
    def drain(self, answers: list[str | int], crash_at: int | None, kill: str | None) -> None:
        self.server.script, self.server.kill = list(answers), kill
        self.plan.arm(crash_at)
        self._run(self.drainer.drain())
        self.plan.arm(None)
        self.server.script, self.server.kill = [], None

    @rule()
    def restart(self) -> None:
        self._boot()

    @invariant()
    def never_twice_never_both(self) -> None:
        stored = Counter(self.server.documents.values())
        reported = Counter(self.server.reports.values())
        assert all(n == 1 for n in stored.values()), stored
        assert all(n == 1 for n in reported.values()), reported
        assert not set(stored) & set(reported), "a capture both delivered and reported"

    @invariant()
    def never_lost(self) -> None:
        waiting = {i.capture_id for i in Outbox(self.dir / "outbox").pending()}
        settled = set(self.server.documents.values()) | set(self.server.reports.values())
        assert self.owed <= waiting | settled, self.owed - waiting - settled

    @rule()
    def settle(self) -> None:
        """The server comes back for good: everything owed ends delivered or reported."""
        self._boot()
        self.server.kill = None
        for _ in range(3):
            self.loop.run_until_complete(self.drainer.drain())
        assert Outbox(self.dir / "outbox").pending() == []
        settled = set(self.server.documents.values()) | set(self.server.reports.values())
        assert self.owed <= settled

    def teardown(self) -> None:
        os.fsync = self._fsync
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)


OutboxMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=20, deadline=None)
TestOutboxDelivery = OutboxMachine.TestCase
