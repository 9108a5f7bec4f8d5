"""MemberDirectory adapters: the local membership table, and the agency's membership
service over HTTP (its JSON contract is in the README, "Verification workbench").

The HTTP adapter never keeps a check-in waiting longer than its `timeout`: that is the
whole lookup's budget, retries and their backoff included. A service that keeps failing
opens the circuit breaker: for `open_seconds` lookups fail at once ("circuit_open"), then
one lookup tries it again (half-open) and its outcome closes or reopens the circuit.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import httpx
import structlog

from server.domain.claims import ClaimRuleError
from server.domain.members import MemberRecord, MemberSource, parse_member
from server.ports.directory import DirectoryUnavailable, Unavailability
from server.ports.records import RecordStore

log = structlog.get_logger("loket.directory")

MAX_ANSWER_BYTES = 64 * 1024  # a member record is ~1 KB


class LocalMemberDirectory:
    """The membership table filled by `loket claims import` (server/adapters/sql)."""

    name = "local"

    def __init__(self, store: RecordStore) -> None:
        self._store = store

    async def lookup(self, nik: str, kpj: str) -> MemberRecord | None:
        return await self._store.read(lambda tx: tx.find_member(nik, kpj))

    async def close(self) -> None:
        return None


class Circuit(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after `failures` failures in a row; stays open `open_seconds`; then lets one
    trial through at a time (half-open) until one succeeds (closed) or fails (open again).
    The clock is a parameter, so tests drive it."""

    def __init__(
        self,
        failures: int = 5,
        open_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or open_seconds <= 0:
            raise ValueError("failures >= 1 and open_seconds > 0")
        self.failures, self.open_seconds, self._clock = failures, open_seconds, clock
        self.state = Circuit.CLOSED
        self.failed_in_a_row = 0
        self.opened_at: float | None = None
        self._trial = False  # a half-open trial is under way

    def allow(self) -> bool:
        """Whether a request may go out now (a True in half-open reserves the trial)."""
        if self.state is Circuit.OPEN:
            assert self.opened_at is not None
            if self._clock() - self.opened_at < self.open_seconds:
                return False
            self.state = Circuit.HALF_OPEN
        if self.state is Circuit.HALF_OPEN:
            if self._trial:
                return False
            self._trial = True
        return True

    def retry_in(self) -> float:
        if self.state is not Circuit.OPEN or self.opened_at is None:
            return 0.0
        return max(0.0, self.open_seconds - (self._clock() - self.opened_at))

    def succeeded(self) -> None:
        self.state, self.failed_in_a_row, self.opened_at, self._trial = (
            Circuit.CLOSED,
            0,
            None,
            False,
        )

    def failed(self) -> None:
        self.failed_in_a_row += 1
        self._trial = False
        if self.state is Circuit.HALF_OPEN or self.failed_in_a_row >= self.failures:
            self.state, self.opened_at = Circuit.OPEN, self._clock()


class _Retry(Exception):
    """An attempt failed in a way the next attempt may not (5xx, network, timeout)."""

    def __init__(self, reason: Unavailability, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


class HttpMemberDirectory:
    """The agency's membership service: `POST url` with {"nik", "kpj"}; 200 with
    {"member": {...}} or 404 for no such member (README: the contract)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 3.0,
        retries: int = 2,
        backoff: float = 0.2,
        breaker: CircuitBreaker | None = None,
        token: str | None = None,
        client: httpx.AsyncClient | None = None,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
    ) -> None:
        if timeout <= 0 or retries < 0 or backoff < 0:
            raise ValueError("timeout > 0, retries >= 0, backoff >= 0")
        self.name = url
        self.url, self.timeout, self.retries, self.backoff = url, timeout, retries, backoff
        self.breaker = breaker or CircuitBreaker()
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._client = client or httpx.AsyncClient(follow_redirects=False)
        self._today = today

    async def lookup(self, nik: str, kpj: str) -> MemberRecord | None:
        if not self.breaker.allow():
            raise DirectoryUnavailable(
                Unavailability.CIRCUIT_OPEN,
                f"the membership service failed {self.breaker.failures} times in a row; "
                f"not asked again for {self.breaker.retry_in():.0f} s",
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        last = _Retry(Unavailability.TIMEOUT, f"no answer within {self.timeout:g} s")
        for attempt in range(self.retries + 1):
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                found = await asyncio.wait_for(self._ask(nik, kpj), left)
            except TimeoutError:
                last = _Retry(Unavailability.TIMEOUT, f"no answer within {self.timeout:g} s")
                break  # the budget is spent
            except _Retry as exc:
                last = exc
                pause = min(self.backoff * 2**attempt, deadline - loop.time())
                if attempt < self.retries and pause > 0:
                    await asyncio.sleep(pause)
                continue
            except DirectoryUnavailable:
                self.breaker.failed()
                raise
            self.breaker.succeeded()
            return found
        self.breaker.failed()
        tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
        raise DirectoryUnavailable(last.reason, f"{last.detail} ({tries})")

    async def _ask(self, nik: str, kpj: str) -> MemberRecord | None:
        try:
            async with self._client.stream(
                "POST", self.url, json={"nik": nik, "kpj": kpj}, headers=self._headers
            ) as response:
                body = await _read_bounded(response)
        except httpx.TimeoutException as exc:
            raise _Retry(Unavailability.TIMEOUT, f"timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise _Retry(Unavailability.FAILED, f"unreachable ({type(exc).__name__})") from None
        status = response.status_code
        if status == 404:
            return None
        if status >= 500 or status in (408, 429):
            raise _Retry(Unavailability.FAILED, f"the service answered {status}")
        if status != 200:
            raise DirectoryUnavailable(
                Unavailability.REFUSED,
                f"the membership service refused the lookup ({status}): check "
                "LOKET_DIRECTORY_URL and LOKET_DIRECTORY_TOKEN",
            )
        return self._member(body, nik, kpj)

    def _member(self, body: bytes, nik: str, kpj: str) -> MemberRecord | None:
        def malformed(why: str) -> DirectoryUnavailable:
            log.warning("directory_malformed_answer", url=self.url, problem=why)
            return DirectoryUnavailable(
                Unavailability.MALFORMED, f"the membership service's answer is malformed: {why}"
            )

        try:
            data: Any = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise malformed("not JSON") from None
        if not isinstance(data, dict) or "member" not in data:
            raise malformed('expected an object with "member"')
        member = data["member"]
        if member is None:
            return None
        if not isinstance(member, dict):
            raise malformed('"member" is not an object')
        if member.get("nik") != nik or member.get("kpj") != kpj:
            raise malformed("it is about another NIK or KPJ than the one asked")
        values = {
            k: v if v is None else str(v) for k, v in member.items() if k not in ("nik", "kpj")
        }
        try:
            return parse_member(
                values, source=MemberSource.DIRECTORY, recorded_at=datetime.now(UTC),
                nik=nik, today=self._today(),
            )  # fmt: skip
        except ClaimRuleError as exc:
            raise malformed(exc.message) from None

    async def close(self) -> None:
        await self._client.aclose()


async def _read_bounded(response: httpx.Response) -> bytes:
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise DirectoryUnavailable(
                Unavailability.MALFORMED,
                f"the membership service's answer is larger than {MAX_ANSWER_BYTES} bytes",
            )
        chunks.append(chunk)
    return b"".join(chunks)
