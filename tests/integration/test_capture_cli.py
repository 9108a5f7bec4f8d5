"""`loket capture scene|check` as an operator runs them, on pictures written to disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from server.cli import app

runner = CliRunner(env={"COLUMNS": "200"})  # rich tables: no wrapping
ROOT = Path(__file__).resolve().parents[2]


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pictures made with `loket capture scene`, each with its sidecar of true corners."""
    folder = tmp_path_factory.mktemp("scenes")
    for name, args in {
        "card": ["--kind", "id1", "--seed", "3"],
        "letter": ["--kind", "kk", "--seed", "4"],
        "shaky": ["--kind", "id1", "--seed", "5", "--blur"],
        "shiny": ["--kind", "ktp", "--seed", "6", "--glare"],
        "desk": ["--seed", "7", "--no-document"],
    }.items():
        out = _ok("capture", "scene", str(folder / f"{name}.png"), *args)
        assert f"{name}.png" in out and (folder / f"{name}.json").exists()
    return folder


def _lines(output: str) -> dict[str, dict[str, object]]:
    rows = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return {Path(str(row["file"])).stem: row for row in rows}


def _truth(folder: Path, name: str) -> np.ndarray:
    return np.array(json.loads((folder / f"{name}.json").read_text())["corners"])


def test_check_json_gives_corners_verdicts_and_scores(scenes: Path, tmp_path: Path) -> None:
    cards = [str(scenes / f"{n}.png") for n in ("card", "shaky", "shiny", "desk")]
    rows = _lines(_ok("capture", "check", *cards, "--kind", "id1", "--json"))
    assert list(rows) == ["card", "shaky", "shiny", "desk"]
    for row in rows.values():
        assert {"file", "corners", "verdict", "advice", "sharpness", "glare"} <= set(row)
    assert (rows["card"]["verdict"], rows["card"]["advice"]) == ("accept", None)
    assert (rows["shaky"]["verdict"], rows["shaky"]["advice"]) == ("blur", "hold_still")
    assert (rows["shiny"]["verdict"], rows["shiny"]["advice"]) == ("glare", "avoid_glare")
    desk = rows["desk"]
    assert (desk["verdict"], desk["advice"]) == ("no_document", "place_document")
    assert desk["corners"] is None and desk["sharpness"] is None and desk["glare"] is None
    for name in ("card", "shaky", "shiny"):
        found = np.array(rows[name]["corners"])
        assert found.shape == (4, 2)
        truth = _truth(scenes, name)
        width = np.linalg.norm(truth[1] - truth[0])  # ID-1: the long side, placed landscape
        assert np.linalg.norm(found - truth, axis=1).max() < 0.02 * width, name

    letter = _lines(_ok("capture", "check", str(scenes / "letter.png"), "--kind", "a4",
                        "--json", "--write-rectified", str(tmp_path / "flat")))  # fmt: skip
    row = letter["letter"]
    assert row["verdict"] == "accept"
    flat = cv2.imread(str(row["rectified"]))
    assert flat is not None and Path(str(row["rectified"])).parent == tmp_path / "flat"
    assert flat.shape[0] / flat.shape[1] == pytest.approx(297 / 210, rel=0.01)


def test_check_without_json_prints_a_table(scenes: Path) -> None:
    out = _ok("capture", "check", str(scenes / "card.png"), str(scenes / "shaky.png"))
    assert "card.png" in out and "accept" in out and "hold_still" in out
    assert "thresholds: sharpness >=" in out


def test_thresholds_can_be_moved_for_calibration(scenes: Path) -> None:
    strict = _lines(_ok("capture", "check", str(scenes / "card.png"), "--json",
                        "--min-sharpness", "0.9"))  # fmt: skip
    assert strict["card"]["verdict"] == "blur"
    lenient = _lines(_ok("capture", "check", str(scenes / "shiny.png"), "--json",
                         "--max-glare", "0.5"))  # fmt: skip
    assert lenient["shiny"]["verdict"] == "accept"


def test_bad_input_is_reported(scenes: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a picture")
    result = runner.invoke(app, ["capture", "check", str(junk), str(scenes / "card.png"),
                                 "--json"])  # fmt: skip
    assert result.exit_code == 1
    rows = _lines(result.output)
    assert rows["junk"]["error"] and rows["card"]["verdict"] == "accept"
    wrong = runner.invoke(app, ["capture", "check", str(scenes / "card.png"), "--kind", "pdf"])
    assert wrong.exit_code == 2 and "unknown document kind" in wrong.output


def test_help_tells_an_operator_how_to_calibrate() -> None:
    out = _ok("capture", "check", "--help")
    assert "Calibrating a kiosk's document camera" in out and "--write-rectified" in out


def test_the_installed_command_runs(scenes: Path) -> None:
    """The real entry point in its own process (what `uv run loket capture ...` runs)."""
    proc = subprocess.run(
        [sys.executable, "-m", "server.cli", "capture", "check", str(scenes / "card.png"),
         "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    assert row["verdict"] == "accept" and len(row["corners"]) == 4
