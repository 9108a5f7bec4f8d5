"""The kiosk's outbox, pure file and retry behaviour (the SIGKILL proofs are in
tests/integration/test_outbox_delivery.py)."""

from __future__ import annotations

from pathlib import Path

from booth_client.outbox import Delivery, Outbox, OutboxItem, drain_once


def _outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox")


async def test_items_survive_a_restart_and_leave_only_when_acknowledged(tmp_path: Path) -> None:
    box = _outbox(tmp_path)
    first = box.put("claim-1", "ktp", b"\xff\xd8one")
    second = box.put("claim-1", "kk", b"\xff\xd8two")
    again = _outbox(tmp_path)  # a kiosk restart
    assert [i.item_id for i in again.pending()] == [first.item_id, second.item_id]
    assert again.picture(first) == b"\xff\xd8one"
    seen: list[tuple[str, str]] = []

    async def upload(item: OutboxItem, data: bytes) -> Delivery:
        seen.append((item.kind, item.idempotency_key))
        return Delivery(201, {"document_id": item.kind})

    assert await drain_once(again, upload) == (2, 0)
    assert again.pending() == []
    assert seen == [("ktp", first.idempotency_key), ("kk", second.idempotency_key)]


async def test_network_loss_keeps_everything_and_retries_with_the_same_key(
    tmp_path: Path,
) -> None:
    box = _outbox(tmp_path)
    item = box.put("claim-1", "ktp", b"\xff\xd8x")
    keys: list[str] = []

    async def offline(it: OutboxItem, data: bytes) -> Delivery:
        keys.append(it.idempotency_key)
        raise OSError("network unreachable")

    assert await drain_once(box, offline) == (0, 1)

    async def busy(it: OutboxItem, data: bytes) -> Delivery:
        keys.append(it.idempotency_key)
        return Delivery(503, {})

    assert await drain_once(box, busy) == (0, 1)
    assert keys == [item.idempotency_key] * 2 and len(box.pending()) == 1


async def test_a_final_refusal_is_dropped_and_the_rest_go_on(tmp_path: Path) -> None:
    box = _outbox(tmp_path)
    refused = box.put("claim-old", "ktp", b"\xff\xd8a")
    box.put("claim-1", "kk", b"\xff\xd8b")

    async def upload(it: OutboxItem, data: bytes) -> Delivery:
        if it.item_id == refused.item_id:
            return Delivery(403, {"error": {"code": "not_in_session"}})
        return Delivery(201, {})

    assert await drain_once(box, upload) == (1, 0)
    assert box.pending() == []


def test_a_write_cut_short_leaves_no_half_item(tmp_path: Path) -> None:
    box = _outbox(tmp_path)
    kept = box.put("claim-1", "ktp", b"\xff\xd8a")
    # Killed between the picture and its record, and mid-way through a temp file:
    (box.directory / "00000000000000000001-deadbeef.jpg").write_bytes(b"orphan")
    (box.directory / "00000000000000000002-cafe.json.tmp").write_bytes(b"{")
    again = _outbox(tmp_path)
    assert [i.item_id for i in again.pending()] == [kept.item_id]  # swept on first use
    assert sorted(p.name for p in again.directory.iterdir()) == sorted(
        [kept.item_id + ".jpg", kept.item_id + ".json"]
    )
