"""Which document counts when a participant showed several of one kind."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from server.domain.claims import new_booked_claim
from server.domain.documents import RequirementStatus
from server.ports.records import DocumentRecord
from server.record_views import claim_checklist
from signaling.messages import ClaimType

NOW = datetime(2026, 11, 25, tzinfo=UTC)
CLAIM = new_booked_claim(
    "c1", "BK-1", "3171011508900001", "12345678901", ClaimType.RETIREMENT, "jkt01", NOW, NOW
)


def _ktp(verdict: str | None, n: int) -> DocumentRecord:
    return DocumentRecord(
        f"d{n}", "c1", "ktp", f"{n:064x}", "image/jpeg", 1, 64, 64, None, "b", NOW,
        verdict=verdict,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("verdicts", "status"),
    [
        (["rejected", None], RequirementStatus.PENDING),  # a new copy after a rejection
        ([None, "rejected"], RequirementStatus.PENDING),
        (["rejected", "accepted", None], RequirementStatus.ACCEPTED),
        (["rejected", "rejected"], RequirementStatus.REJECTED),
        ([], RequirementStatus.MISSING),
    ],
)
def test_the_best_picture_of_a_kind_counts_whatever_the_order(verdicts, status) -> None:
    docs = [_ktp(v, n) for n, v in enumerate(verdicts)]
    identity = next(i for i in claim_checklist(CLAIM, docs).items if "ktp" in i.requirement.any_of)
    assert identity.status is status
