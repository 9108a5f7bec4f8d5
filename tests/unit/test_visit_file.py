"""The kiosk's visit kept across a restart (booth_client/visit.py): the resume token comes
back only for the same server and booth, the file is private, damage means "start afresh"."""

from __future__ import annotations

from pathlib import Path

from booth_client.visit import VisitFile


def _visit(tmp_path: Path, server: str = "https://loket.example/", booth: str = "b1") -> VisitFile:
    return VisitFile(tmp_path / "state" / "visit.json", server_url=server, booth=booth)


def test_the_token_comes_back_for_its_own_server_and_booth_only(tmp_path: Path) -> None:
    assert _visit(tmp_path).load() is None
    _visit(tmp_path).save("resume-1")
    assert _visit(tmp_path, server="https://loket.example").load() == "resume-1"
    assert _visit(tmp_path, server="https://other.example").load() is None
    assert _visit(tmp_path, booth="b2").load() is None
    assert (tmp_path / "state" / "visit.json").stat().st_mode & 0o777 == 0o600
    _visit(tmp_path).forget()
    assert _visit(tmp_path).load() is None
    _visit(tmp_path).forget()  # nothing to forget: fine


def test_a_damaged_file_means_a_fresh_visit(tmp_path: Path) -> None:
    _visit(tmp_path).save("resume-1")
    (tmp_path / "state" / "visit.json").write_text('{"server": "https://loket.example"')
    assert _visit(tmp_path).load() is None
    (tmp_path / "state" / "visit.json").write_text("[1, 2]")
    assert _visit(tmp_path).load() is None
