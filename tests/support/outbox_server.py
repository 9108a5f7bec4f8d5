"""The server as the kiosk's drainer sees it (booth_client.delivery.Transport), in memory,
for the delivery unit and property tests: it keeps what a real one keeps (one document
per Idempotency-Key, one report per report key, the grant per capture) and answers as
scripted. The real server is in tests/integration/test_outbox_delivery.py."""

from __future__ import annotations

from dataclasses import dataclass, field

from booth_client.delivery import Delivery, Progress
from booth_client.outbox import OutboxItem


class Crash(BaseException):
    """The kiosk process dies here (SIGKILL): nothing after it runs."""


@dataclass
class CrashPlan:
    """Dies at the `at`-th step counted from arming (None: never)."""

    at: int | None = None
    steps: int = 0

    def arm(self, at: int | None) -> None:
        self.at, self.steps = at, 0

    def step(self) -> None:
        if self.at is None:
            return
        self.steps += 1
        if self.steps == self.at:
            self.at = None
            raise Crash


@dataclass
class FakeServer:
    # What the next uploads get: "ok", "network", 401, 503, 422 ... (then "ok").
    script: list[str | int] = field(default_factory=list)
    crash: CrashPlan = field(default_factory=CrashPlan)
    # The kiosk dies at this point of its next upload (LOKET_BOOTH_CRASH_POINT's two).
    kill: str | None = None  # "before_upload" | "after_upload"
    documents: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> capture
    reports: dict[str, str] = field(default_factory=dict)  # report key -> capture
    grants: dict[str, str] = field(default_factory=dict)  # capture -> grant
    token_fresh: bool = True
    uploads: int = 0  # upload requests that reached the server
    in_flight: int = 0
    most_in_flight: int = 0
    seen_grants: list[str | None] = field(default_factory=list)

    def _next(self) -> str | int:
        return self.script.pop(0) if self.script else "ok"

    async def grant(self, item: OutboxItem) -> Delivery:
        if not self.token_fresh:
            return Delivery(401, {"error": {"code": "unauthenticated"}})
        grant = self.grants.setdefault(item.capture_key, f"lcg1.{item.capture_key}.mac")
        return Delivery(201, {"grant": grant})

    async def upload(self, item: OutboxItem, data: bytes, progress: Progress) -> Delivery:
        self.crash.step()  # killed before sending
        if self.kill == "before_upload":
            self.kill = None
            raise Crash
        answer = self._next()
        if answer == "network":
            raise OSError("network unreachable")
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await progress(0, len(data))
            await progress(len(data), len(data))
        finally:
            self.in_flight -= 1
        if not self.token_fresh or answer == 401:
            self.token_fresh = False
            return Delivery(401, {"error": {"code": "unauthenticated"}})
        stored = item.idempotency_key in self.documents
        if isinstance(answer, int) and not (stored and answer < 500 and answer != 429):
            return Delivery(answer, {"error": {"code": f"http_{answer}", "message": "no"}})
        # (a retry of a stored upload is answered as stored, whatever changed since: the
        # real server's promise, tested in tests/integration/test_resumable_uploads.py)
        self.uploads += 1
        self.seen_grants.append(item.grant)
        replayed = item.idempotency_key in self.documents
        self.documents.setdefault(item.idempotency_key, item.capture_key)
        self.crash.step()  # stored; killed before hearing the answer
        if self.kill == "after_upload":
            self.kill = None
            raise Crash
        return Delivery(201, {"document_id": f"doc-{item.capture_key}", "replayed": replayed})

    async def report(self, item: OutboxItem) -> Delivery:
        self.crash.step()
        self.reports.setdefault(f"undeliverable-{item.item_id}", item.capture_key)
        self.crash.step()
        return Delivery(201, {"capture_id": item.capture_key})

    async def reauthenticate(self) -> None:
        self.token_fresh = True
