"""Booked claims for tests, written through the real records store."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from server.domain.claims import Claim, new_booked_claim
from server.ports.records import RecordsTx
from server.records import RecordsService, new_id
from signaling.messages import ClaimType
from tests.support.live_server import LiveServer

_serial = itertools.count(1)


def valid_nik(serial: int) -> str:
    """A structurally valid NIK: Jakarta (31), born 15-08-1990, serial `serial`."""
    return f"317101150890{serial % 10_000 or 1:04d}"


async def seed_claim(
    server: LiveServer,
    booking_code: str,
    *,
    claim_type: ClaimType = ClaimType.RESIGNATION,
    balance_idr: int = 20_000_000,
    branch: str = "jkt01",
) -> Claim:
    records: RecordsService = server.app.state.records
    now = datetime.now(UTC)
    claim = new_booked_claim(
        new_id(), booking_code, valid_nik(next(_serial)), "12345678901", claim_type, branch,
        now + timedelta(hours=1), now, balance_idr=balance_idr,
    )  # fmt: skip

    def add(tx: RecordsTx) -> None:
        tx.add_claim(claim)

    await records.store.write(add)
    return claim
