"""The kiosk's outbox as storage: items survive a restart whole, a write cut short leaves
nothing half, records are rewritten without losing a change, tombstones stay few (the
delivery rules: tests/unit/test_delivery.py; kills at every step:
tests/unit/test_delivery_properties.py; real processes: tests/integration/
test_outbox_delivery.py)."""

from __future__ import annotations

import threading
from pathlib import Path

from booth_client.outbox import KEEP_TOMBSTONES, ItemState, Outbox


def _outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox")


def test_items_survive_a_restart_whole_and_in_order(tmp_path: Path) -> None:
    box = _outbox(tmp_path)
    first = box.put("claim-1", "ktp", b"\xff\xd8one", capture_id="c1", session_id="s1")
    reserved = box.reserve("claim-1", "kk", capture_id="c2", session_id="s1")
    again = _outbox(tmp_path)  # a kiosk restart
    items = again.pending()
    assert [i.item_id for i in items] == [first.item_id, reserved.item_id]
    assert [i.state for i in items] == [ItemState.PENDING, ItemState.RESERVED]
    assert items[0].size == 5 and again.picture(items[0]) == b"\xff\xd8one"
    assert items[0].idempotency_key == first.idempotency_key  # the key never changes
    assert {p.stat().st_mode & 0o777 for p in again.directory.glob("*.*")} == {0o600}


def test_a_write_cut_short_leaves_no_half_item(tmp_path: Path) -> None:
    box = _outbox(tmp_path)
    kept = box.put("claim-1", "ktp", b"\xff\xd8a")
    # Killed between a picture and its record, and mid-way through a temp file:
    (box.directory / "00000000000000000001-deadbeef.jpg").write_bytes(b"orphan")
    (box.directory / "00000000000000000002-cafe.json.tmp").write_bytes(b"{")
    again = _outbox(tmp_path)
    assert [i.item_id for i in again.pending()] == [kept.item_id]  # swept on first use
    assert sorted(p.name for p in again.directory.glob("*.*")) == sorted(
        [kept.item_id + ".jpg", kept.item_id + ".json"]
    )


def test_a_picture_renamed_before_its_record_counts_as_taken(tmp_path: Path) -> None:
    box = _outbox(tmp_path)
    item = box.reserve("claim-1", "ktp", capture_id="c1")
    # Killed inside attach(): the picture is whole on disk, the record still says reserved.
    (box.directory / (item.item_id + ".jpg")).write_bytes(b"\xff\xd8whole")
    (found,) = _outbox(tmp_path).pending()
    assert found.state is ItemState.PENDING and found.size == 7


def test_concurrent_updates_of_one_record_lose_nothing(tmp_path: Path) -> None:
    box = _outbox(tmp_path)
    item = box.reserve("claim-1", "ktp", capture_id="c1")
    grant = threading.Thread(target=lambda: box.update(item.item_id, grant="lcg1.x.y"))
    grant.start()
    box.attach(item.item_id, b"\xff\xd8pic", {"attempt": 2})
    grant.join()
    (found,) = box.pending()
    assert (found.grant, found.state, found.scores) == (
        "lcg1.x.y",
        ItemState.PENDING,
        {"attempt": 2},
    )


def test_tombstones_keep_the_last_few_and_no_picture(tmp_path: Path) -> None:
    box = _outbox(tmp_path)
    for n in range(KEEP_TOMBSTONES + 5):
        item = box.put("claim-1", "ktp", b"\xff\xd8" + bytes([n]), capture_id=f"c{n}")
        box.bury(item, {"reason": "image_rejected", "reported": True})
    stones = box.tombstones()
    assert len(stones) == KEEP_TOMBSTONES and stones[0]["capture_id"] == f"c{KEEP_TOMBSTONES + 4}"
    assert box.pending() == [] and not list((box.directory / "gone").glob("*.jpg"))


def test_one_drainer_per_outbox_directory(tmp_path: Path) -> None:
    box, other = _outbox(tmp_path), _outbox(tmp_path)  # two processes, one directory
    with box.exclusive() as mine:
        assert mine
        with other.exclusive() as theirs:
            assert not theirs
    with other.exclusive() as theirs:
        assert theirs
