"""The MemberDirectory's HTTP adapter against a small fake membership service (a real
uvicorn server on a loopback port): a member found, none found, a timeout, 5xx and
retries, malformed answers, the circuit breaker; and a walk-in checking in over a real
socket while the service hangs: the check-in is answered within the timeout, the claim
carries the typed data marked "not confirmed by the directory", and the officer's
"look up again" confirms it once the service is back."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from server.adapters.directory import Circuit, CircuitBreaker, HttpMemberDirectory
from server.domain.members import MemberSource
from server.ports.directory import DirectoryUnavailable, Unavailability
from signaling.messages import (
    Accept,
    Ack,
    BoothAssigned,
    BoothOffered,
    CheckIn,
    ClaimType,
    Role,
    WalkInRef,
)
from tests.support.accounts import add_user, booth_token, login
from tests.support.live_server import free_port, running_server, server_settings
from tests.support.ws_client import SignalClient

NIK = "3171015208900001"  # a woman born 12-08-1990
KPJ = "12345678901"
MEMBER = {
    "nik": NIK, "kpj": KPJ, "full_name": "SITI AMINAH", "birth_place": "JAKARTA",
    "birth_date": "1990-08-12", "sex": "F", "address": None, "employer_name": "PT MAJU JAYA",
    "employment_end": "2026-09-30", "bank_name": "BANK MANDIRI",
    "account_number": "1230045678901", "account_holder": "SITI AMINAH",
}  # fmt: skip


@dataclass
class FakeDirectory:
    """The agency's membership service as the contract describes it, misbehaving on
    demand: `mode` ok, unknown, slow, error, flaky (`flaky` 503s, then ok), malformed,
    other_nik, incomplete, huge."""

    url: str = ""
    mode: str = "ok"
    flaky: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/members/lookup")
        async def lookup(request: Request) -> Response:
            asked = await request.json()
            self.requests.append({"body": asked, "auth": request.headers.get("authorization")})
            if self.mode == "slow":
                await asyncio.sleep(30)
            if self.mode == "error" or (self.mode == "flaky" and self.flaky > 0):
                self.flaky -= 1
                return JSONResponse({"error": "down"}, status_code=503)
            if self.mode == "unknown":
                return JSONResponse({"error": "no such member"}, status_code=404)
            if self.mode == "malformed":
                return Response("<html>proxy error</html>", media_type="text/html")
            if self.mode == "huge":
                return Response(b"{" + b" " * 100_000 + b"}", media_type="application/json")
            member = dict(MEMBER, nik=asked["nik"], kpj=asked["kpj"])
            if self.mode == "other_nik":
                member["nik"] = "3171015208900002"
            if self.mode == "incomplete":
                del member["birth_date"]
            return JSONResponse({"member": member})

        return app


@contextlib.asynccontextmanager
async def fake_directory() -> AsyncIterator[FakeDirectory]:
    fake = FakeDirectory()
    port = free_port()
    config = uvicorn.Config(
        fake.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off",
        log_config=None,  # not uvicorn's dictConfig: this process's logging stays as it is
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    fake.url = f"http://127.0.0.1:{port}/members/lookup"
    try:
        yield fake
    finally:
        server.should_exit = True
        server.force_exit = True  # a "slow" request must not hold the shutdown
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)


def adapter(fake: FakeDirectory, **kw: Any) -> HttpMemberDirectory:
    options: dict[str, Any] = {"timeout": 1.0, "retries": 2, "backoff": 0.05, "token": "t0k"}
    options.update(kw)
    return HttpMemberDirectory(fake.url, today=lambda: date(2026, 12, 8), **options)


async def test_a_member_is_found_and_an_unknown_one_is_none() -> None:
    async with fake_directory() as fake:
        directory = adapter(fake)
        found = await directory.lookup(NIK, KPJ)
        assert found is not None and found.source is MemberSource.DIRECTORY
        assert found.full_name == "SITI AMINAH" and found.birth_date == date(1990, 8, 12)
        assert fake.requests[-1] == {"body": {"nik": NIK, "kpj": KPJ}, "auth": "Bearer t0k"}
        fake.mode = "unknown"
        assert await directory.lookup(NIK, KPJ) is None
        assert directory.breaker.state is Circuit.CLOSED
        await directory.close()


async def test_a_service_that_does_not_answer_costs_the_timeout_and_no_more() -> None:
    async with fake_directory() as fake:
        fake.mode = "slow"
        directory = adapter(fake, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(DirectoryUnavailable) as exc:
            await directory.lookup(NIK, KPJ)
        took = time.monotonic() - started
        assert exc.value.reason is Unavailability.TIMEOUT
        assert "no answer within 0.5 s" in exc.value.message
        assert 0.45 <= took < 1.0, took
        await directory.close()


async def test_5xx_is_retried_with_backoff_then_reported() -> None:
    async with fake_directory() as fake:
        fake.mode, fake.flaky = "flaky", 2
        directory = adapter(fake)
        assert await directory.lookup(NIK, KPJ) is not None  # third attempt
        assert len(fake.requests) == 3
        fake.mode = "error"
        with pytest.raises(DirectoryUnavailable) as exc:
            await directory.lookup(NIK, KPJ)
        assert exc.value.reason is Unavailability.FAILED
        assert exc.value.message == "the service answered 503 (3 attempts)"
        assert len(fake.requests) == 6
        await directory.close()


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("malformed", "not JSON"),
        ("other_nik", "another NIK or KPJ"),
        ("incomplete", "birth_date: is missing"),
        ("huge", "larger than 65536 bytes"),
    ],
)
async def test_a_malformed_answer_is_said_and_not_retried(mode: str, says: str) -> None:
    async with fake_directory() as fake:
        fake.mode = mode
        directory = adapter(fake)
        with pytest.raises(DirectoryUnavailable) as exc:
            await directory.lookup(NIK, KPJ)
        assert exc.value.reason is Unavailability.MALFORMED and says in exc.value.message
        assert len(fake.requests) == 1
        await directory.close()


async def test_the_circuit_opens_after_failures_then_tries_once_again() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=2, open_seconds=30, clock=lambda: now[0])
    async with fake_directory() as fake:
        fake.mode = "error"
        directory = adapter(fake, retries=0, breaker=breaker)
        for _ in range(2):
            with pytest.raises(DirectoryUnavailable):
                await directory.lookup(NIK, KPJ)
        assert breaker.state is Circuit.OPEN and len(fake.requests) == 2
        started = time.monotonic()
        with pytest.raises(DirectoryUnavailable) as exc:
            await directory.lookup(NIK, KPJ)
        assert exc.value.reason is Unavailability.CIRCUIT_OPEN
        assert "not asked again for 30 s" in exc.value.message
        assert time.monotonic() - started < 0.05 and len(fake.requests) == 2  # not asked
        now[0] = 31.0  # half-open: one trial, which fails and reopens
        with pytest.raises(DirectoryUnavailable) as exc:
            await directory.lookup(NIK, KPJ)
        assert exc.value.reason is Unavailability.FAILED and breaker.state is Circuit.OPEN
        now[0] = 62.0
        fake.mode = "ok"
        assert await directory.lookup(NIK, KPJ) is not None
        assert breaker.state is Circuit.CLOSED and len(fake.requests) == 4
        await directory.close()


async def test_a_walk_in_goes_on_unconfirmed_while_the_directory_hangs(tmp_path) -> None:
    async with fake_directory() as fake:
        fake.mode = "slow"
        settings = server_settings(tmp_path, directory_url=fake.url, directory_timeout=0.8,
                                   directory_retries=0)  # fmt: skip
        async with running_server(settings) as server:
            booth = await SignalClient.connect(server.ws_url, Role.BOOTH,
                                               await booth_token(server, "booth-1"))  # fmt: skip
            check_in = CheckIn(claim=WalkInRef(nik=NIK, kpj=KPJ, claim_type=ClaimType.RETIREMENT))
            started = time.monotonic()
            await booth.send(check_in)
            await booth.expect(Ack, reply_to=check_in.id, timeout=5)
            assert time.monotonic() - started < 0.8 + 1.0  # the timeout, never a hang
            records = server.app.state.records
            (claim,) = await records.store.find_claims_by_nik(NIK)
            member = await records.store.read(lambda tx: tx.get_claim_member(claim.claim_id))
            assert member.source is MemberSource.WALK_IN_TYPED and not member.confirmed
            assert member.note.startswith("not confirmed by the directory: no answer within")
            # The officer sees that, and looks the member up again once the service is back.
            await add_user(server, "siti", capacity=1)
            token = (await login(server, "siti"))["access_token"]
            cso = await SignalClient.connect(server.ws_url, Role.CSO, token)
            offered = await cso.expect(BoothOffered)
            await cso.send(Accept(session_id=offered.session_id))
            await cso.expect(BoothAssigned)
            headers = {"Authorization": f"Bearer {(await login(server, 'siti'))['access_token']}"}
            async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as http:
                view = (await http.get(f"/api/claims/{claim.claim_id}/verification")).json()
                assert view["member"]["nik"] == NIK  # in full, for the serving officer
                assert view["member"]["source"] == "walk_in_typed"
                assert "not confirmed by the directory" in view["member"]["note"]
                assert view["approval"]["problems"][0]["code"] == "member_unconfirmed"
                fake.mode = "ok"
                again = await http.post(f"/api/claims/{claim.claim_id}/member/lookup",
                                        headers={"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
                assert again.status_code == 200, again.text
                assert again.json()["source"] == "directory" and again.json()["changed"]
                view = (await http.get(f"/api/claims/{claim.claim_id}/verification")).json()
                assert view["member"]["confirmed"] and view["member"]["note"] is None
                assert {f["field"]: f["value"] for f in view["member"]["fields"]}[
                    "full_name"
                ] == "SITI AMINAH"
            actions = [e.action async for e in records.store.audit_entries()]
            assert actions.count("member.recorded") == 2 and "member.viewed" in actions
            await booth.close()
            await cso.close()
