"""The code's own checks, run by the suite so CI holds them: ruff (lint and format) over the
tree, mypy over the shipped packages and the benchmarks (`[tool.mypy] files`). A bench is
run by hand, not by the tests, so only the type check notices when one calls a changed
function wrongly (it happened: capture_roundtrip_bench broke unseen for a session)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHECKS = {
    "ruff lint": [sys.executable, "-m", "ruff", "check", "."],
    "ruff format": [sys.executable, "-m", "ruff", "format", "--check", "."],
    "mypy": [sys.executable, "-m", "mypy"],
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_the_code_passes(name: str) -> None:
    done = subprocess.run(
        CHECKS[name], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{name} found problems:\n{done.stdout}\n{done.stderr}"
