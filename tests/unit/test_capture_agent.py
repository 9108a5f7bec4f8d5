"""The booth's capture agent with the real pipeline and synthetic document camera: the
statuses the CSO sees, the retry with advice, and delivery through the outbox (the
delivery rules themselves: tests/unit/test_delivery.py)."""

from __future__ import annotations

from pathlib import Path

from booth_client.capture_agent import CaptureAgent, SyntheticDocumentCamera
from booth_client.delivery import Delivery
from booth_client.outbox import Outbox, OutboxItem
from signaling.messages import CaptureStatus, Envelope, RequestCapture


async def _run(tmp_path: Path, camera: SyntheticDocumentCamera, answer: Delivery | None):
    sent: list[Envelope] = []
    uploads: list[tuple[OutboxItem, bytes]] = []
    advice: list[str | None] = []

    async def send(message: Envelope) -> None:
        sent.append(message)

    async def upload(item: OutboxItem, data: bytes) -> Delivery:
        uploads.append((item, data))
        if answer is None:
            raise OSError("network down")
        return answer

    outbox = Outbox(tmp_path / "outbox")
    agent = CaptureAgent(camera, outbox, upload, send, on_advice=lambda m, _: advice.append(m))
    request = RequestCapture(session_id="s1", capture_id="cap-1", kind="ktp")
    await agent.handle(request, "claim-1")
    statuses = [m for m in sent if isinstance(m, CaptureStatus)]
    return statuses, uploads, advice, outbox


async def test_a_shaky_first_attempt_is_retried_with_advice_then_delivered(tmp_path) -> None:
    body = {"document_id": "doc-1"}
    statuses, uploads, advice, outbox = await _run(
        tmp_path, SyntheticDocumentCamera(seed=3, shaky_first=True), Delivery(201, body)
    )
    stages = [s.stage for s in statuses]
    assert stages == ["capturing", "retrying", "uploading", "done"], stages
    assert statuses[1].advice == "hold_still"  # what the participant was told to do
    assert "Tahan dokumen agar tidak bergerak" in advice
    assert statuses[-1].document_id == "doc-1" and statuses[-1].sharpness
    ((item, data),) = uploads
    assert item.claim_id == "claim-1" and item.kind == "ktp" and data[:2] == b"\xff\xd8"
    assert outbox.pending() == []


async def test_offline_keeps_the_picture_in_the_outbox(tmp_path) -> None:
    statuses, uploads, _, outbox = await _run(tmp_path, SyntheticDocumentCamera(seed=4), None)
    assert [s.stage for s in statuses] == ["capturing", "uploading", "queued"]
    assert statuses[1].bytes_sent == 0 and statuses[1].bytes_total == len(uploads[0][1])
    assert statuses[-1].detail and "could not be reached" in statuses[-1].detail
    assert len(outbox.pending()) == 1 and len(uploads) == 1


async def test_a_refusal_is_reported_as_failed(tmp_path) -> None:
    refused = Delivery(403, {"error": {"code": "not_in_session"}})
    statuses, _, _, outbox = await _run(tmp_path, SyntheticDocumentCamera(seed=5), refused)
    assert statuses[-1].stage == "failed" and "not_in_session" in (statuses[-1].detail or "")
    assert outbox.pending() == []
    (stone,) = outbox.tombstones()  # what the screen and the health answer can still tell
    assert stone["reason"] == "not_in_session" and stone["capture_id"] == "cap-1"
