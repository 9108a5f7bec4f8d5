"""Outcomes under concurrency and crashes: exactly one stored outcome per intended change.

The concurrency test drives the records service directly against the real database (the
floor's "who serves this claim" lookup is the only thing not started: every claim is
served by one CSO here, as if 100 sessions were live). The crash test runs the real
server process and kills it with SIGKILL in the middle of recording an outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from server.adapters.sql import migrate
from server.adapters.sql.wiring import open_records
from server.auth.demo import ensure_demo_accounts
from server.domain.claims import ClaimState, new_booked_claim
from server.ports.live_state import LiveSession
from server.ports.records import (
    OutcomeFilter,
    RecordsTx,
)
from server.principal import AccountRole, Principal
from server.records import new_id
from server.settings import Settings
from signaling.messages import ClaimType
from signaling.session import SessionState
from tests.support.claims import valid_nik
from tests.support.live_server import free_port
from tests.support.sessions import pair_with_tokens

SITI = Principal("siti", AccountRole.CSO, "Siti", "jkt01")


async def _claims(service, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    ids = []

    def add_checked_in_claims(tx: RecordsTx) -> None:
        for i in range(count):
            claim = new_booked_claim(
                new_id(), f"BK-C{i:04d}", valid_nik(i + 1), "12345678901",
                ClaimType.TERMINATION, "jkt01", now, now,
            )  # fmt: skip
            tx.add_claim(claim)
            tx.set_claim_state(claim.claim_id, ClaimState.CHECKED_IN)  # at a booth
            ids.append(claim.claim_id)

    await service.store.write(add_checked_in_claims)
    return ids


async def test_100_concurrent_outcomes_with_retries_store_one_each(db_settings) -> None:
    await migrate.upgrade(db_settings)
    async with open_records(db_settings) as (_, service):

        async def serving(claim_id: str) -> LiveSession:
            return LiveSession(f"s-{claim_id}", f"b-{claim_id}", "siti", SessionState.FOCUSED, 0.0,
                               claim_id=claim_id)  # fmt: skip

        service.session_of_claim = serving
        ids = await _claims(service, 100)

        async def submit(claim_id: str, key: str) -> tuple[int, str]:
            result = await service.record_outcome(
                SITI, claim_id, "rejected", ["claim_not_eligible"], "", key
            )
            return result.status_code, result.body["outcome_id"]

        keys = {claim_id: str(uuid.uuid4()) for claim_id in ids}
        # Each submission goes out three times at once: the original and two retries.
        calls = [submit(c, keys[c]) for c in ids for _ in range(3)]
        results = await asyncio.gather(*calls)
        assert {status for status, _ in results} == {201}
        per_claim: dict[str, set[str]] = {}
        for (claim_id, _), (_, outcome_id) in zip(
            [(c, n) for c in ids for n in range(3)], results, strict=True
        ):
            per_claim.setdefault(claim_id, set()).add(outcome_id)
        assert all(len(v) == 1 for v in per_claim.values())
        stored = await service.store.list_outcomes(OutcomeFilter(limit=1000))
        assert Counter(o.claim_id for o in stored) == Counter(ids)
        audit = [e async for e in service.store.audit_entries()]
        assert Counter(e.claim_id for e in audit if e.action == "outcome.recorded") == Counter(ids)
        count, problems = await service.verify_audit()
        assert problems == [] and count == len(audit)
        for claim_id in ids:
            claim = await service.store.get_claim(claim_id)
            assert claim is not None and claim.state is ClaimState.REJECTED


@contextlib.asynccontextmanager
async def server_process(
    data_dir: Path, port: int, **env: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    environ = {**os.environ, "LOKET_DATA_DIR": str(data_dir), "LOKET_LOG_LEVEL": "WARNING",
               "LOKET_JWT_SECRET": "crash-test-" + "x" * 32, **env}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.cli", "serve", "--port", str(port), env=environ,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


async def _tokens(base: str, accounts) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(base_url=base) as http:
        booth = await http.post(
            "/api/auth/booth", json={"credential": accounts.booths[0].credential}
        )
        cso = await http.post(
            "/api/auth/login",
            json={"username": accounts.cso.username, "password": accounts.cso.password},
        )
    return booth.json()["access_token"], cso.json()["access_token"]


@pytest.mark.parametrize("crash_point", ["outcome_before_commit", "outcome_after_commit"])
async def test_sigkill_mid_outcome_then_retry_yields_exactly_one(tmp_path, crash_point) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret="crash-test-" + "x" * 32)
    await migrate.upgrade(settings)
    accounts = await ensure_demo_accounts(settings, booths=1)
    async with open_records(settings) as (_, service):
        [claim_id] = await _claims(service, 1)
    port = free_port()
    base, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    key = str(uuid.uuid4())
    body = {"decision": "rejected", "reason_codes": ["claim_not_eligible"]}

    async def post_outcome(cso_token: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=base, timeout=20) as http:
            return await http.post(
                f"/api/claims/{claim_id}/outcome", json=body,
                headers={"Authorization": f"Bearer {cso_token}", "Idempotency-Key": key},
            )  # fmt: skip

    async with server_process(tmp_path, port, LOKET_CRASH_POINT=crash_point) as proc:
        booth_token, cso_token = await _tokens(base, accounts)
        pair = await pair_with_tokens(ws, booth_token, cso_token, "BK-C0000")
        with pytest.raises(httpx.HTTPError):  # the server dies before answering
            await post_outcome(cso_token)
        await proc.wait()
        assert proc.returncode == -signal.SIGKILL
        with contextlib.suppress(Exception):
            await pair.close()

    async with server_process(tmp_path, port):
        booth_token, cso_token = await _tokens(base, accounts)
        if crash_point == "outcome_before_commit":
            # Nothing was stored: the CSO serves the claim again and the retry records it.
            pair = await pair_with_tokens(ws, booth_token, cso_token, "BK-C0000")
        res = await post_outcome(cso_token)
        assert res.status_code == 201, res.text
        assert (res.headers.get("idempotent-replayed") == "true") is (
            crash_point == "outcome_after_commit"
        )
        again = await post_outcome(cso_token)
        assert again.json() == res.json()

    async with open_records(settings) as (_, service):
        outcomes = await service.store.list_outcomes(OutcomeFilter())
        assert [o.claim_id for o in outcomes] == [claim_id]
        audit = [e async for e in service.store.audit_entries()]
        assert [e.claim_id for e in audit if e.action == "outcome.recorded"] == [claim_id]
        assert (await service.verify_audit())[1] == []
