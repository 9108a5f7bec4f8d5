"""Thin and lossy branch lines: the goals table of issue 22, measured.

Each run is one real `loket booth` (synthetic participant who speaks all the time, face
camera 1280x720 at 15 fps) in a branch network namespace behind a veth pair whose uplink is
shaped with `tbf` and loses packets with iptables' `statistic` match, a `loket serve`
process and the officer outside (tests/support/field.py: an aiortc officer, or with
`--console` the real console in Chromium). After `--settle` seconds of call the officer
asks for a family-card capture (~85-92 KB); the window of its upload (from half a second
before the kiosk says `uploading` until a second after the picture is stored, at least
3 s) is read for: the participant's voice at the officer (frames a second,
50 when whole; longest gap), the officer's voice at the kiosk, the face video (frames a
second, longest freeze) and the capture's upload (`uploading` -> `done` as the officer saw
it).

Baseline in the same run: the same call and capture on an unshaped line. Each figure is
printed against it as a ratio, refused when the two did not do the same work (another
picture size or call resolution).

    scripts/netns-run uv run --frozen --offline python bench/thin_link_bench.py \
        [--runs 2] [--console] [--profiles 1mbit,512kbit,256kbit,1mbit-loss3]

Needs root in the namespace (scripts/netns-run), iproute2 and iptables. Prints a table and
one JSON line per profile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.branch_link import PROFILES, LinkProfile, missing_tools
from tests.support.field import FieldReport, field_run


@dataclass(frozen=True)
class Goal:
    voice_fps: float
    voice_gap_s: float | None
    face_fps: float | None
    face_freeze_s: float | None
    capture_s: float


GOALS = {
    "1mbit": Goal(48, 0.100, 12, None, 1.5),
    "512kbit": Goal(48, 0.120, 7, 1.0, 4.0),
    "256kbit": Goal(45, None, None, 2.0, 8.0),
    "1mbit-loss3": Goal(45, None, 10, 1.0, 3.0),
}
FIGURES = ("voice_fps", "voice_gap_s", "officer_voice_fps", "officer_voice_gap_s",
           "face_fps", "face_freeze_s", "capture_s")  # fmt: skip
HIGHER_IS_BETTER = {"voice_fps", "officer_voice_fps", "face_fps"}


async def one(profile: LinkProfile, args: argparse.Namespace, workdir: Path) -> FieldReport:
    face = (args.width, args.height)
    if args.console:
        from tests.support.field_browser import console_field_run

        return await console_field_run(profile, workdir, face=face, settle_s=args.settle)
    return await field_run(profile, workdir, face=face, settle_s=args.settle)


def same_work(a: FieldReport, b: FieldReport) -> str | None:
    """Why a ratio between two runs would mean nothing (None: it means something)."""
    if a.picture_bytes != b.picture_bytes:
        return f"picture {a.picture_bytes} vs {b.picture_bytes} bytes"
    if a.face_size != b.face_size:
        return f"call at {a.face_size} vs {b.face_size}"
    if "done" not in a.capture_stages or "done" not in b.capture_stages:
        return "a capture was not stored"
    return None


def spread(reports: list[FieldReport], figure: str) -> tuple[float, float, float] | None:
    values = [getattr(r, figure) for r in reports if getattr(r, figure) is not None]
    if not values:
        return None
    return min(values), statistics.median(values), max(values)


def meets(goal: Goal, figure: str, worst: float) -> bool | None:
    target = {
        "voice_fps": goal.voice_fps,
        "voice_gap_s": goal.voice_gap_s,
        "face_fps": goal.face_fps,
        "face_freeze_s": goal.face_freeze_s,
        "capture_s": goal.capture_s,
    }.get(figure)
    if target is None:
        return None
    return worst >= target if figure in HIGHER_IS_BETTER else worst <= target


async def main(args: argparse.Namespace) -> None:
    missing = missing_tools()
    if missing:
        sys.exit(f"missing: {', '.join(missing)} (scripts/install-test-deps installs them)")
    names = ["unshaped", *args.profiles.split(",")]
    reports: dict[str, list[FieldReport]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for name in names:  # interleaved: load on the machine hits every profile alike
                workdir = Path(tmp) / f"{name}-{run}"
                reports[name].append(await one(PROFILES[name], args, workdir))
                print(f"# {name} run {run + 1}: done", file=sys.stderr)
    base = reports["unshaped"]
    officer = "console (Chromium)" if args.console else "aiortc"
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.runs} "
          f"run(s) each; officer: {officer}; figures min/median/max")  # fmt: skip
    for name in names:
        runs = reports[name]
        why_not = next((w for r in runs for b in base if (w := same_work(r, b))), None)
        line: dict[str, object] = {"profile": name, "line": PROFILES[name].describe()}
        goal = GOALS.get(name)
        for figure in FIGURES:
            ours, theirs = spread(runs, figure), spread(base, figure)
            if ours is None:
                line[figure] = None
                continue
            worst = ours[0] if figure in HIGHER_IS_BETTER else ours[2]
            entry: dict[str, object] = {"min": round(ours[0], 3), "median": round(ours[1], 3),
                                        "max": round(ours[2], 3)}  # fmt: skip
            if goal is not None and (met := meets(goal, figure, worst)) is not None:
                entry["goal_met"] = met
            if name != "unshaped":
                if why_not is not None:
                    entry["ratio"] = f"no ratio: {why_not}"
                elif theirs is not None and theirs[1] > 0:
                    entry["ratio"] = round(ours[1] / theirs[1], 2)
            line[figure] = entry
        line["picture_bytes"] = sorted({r.picture_bytes or 0 for r in runs})
        line["face_sizes"] = sorted({s for r in runs for s in r.face_sizes})
        line["first_document_s"] = [round(r.first_document_s or -1, 2) for r in runs]
        line["steps"] = [r.levels() for r in runs]
        line["dropped_at_line"] = [r.line.dropped for r in runs]
        print(json.dumps(line))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--profiles", default="1mbit,512kbit,256kbit,1mbit-loss3")
    parser.add_argument("--console", action="store_true", help="the officer in Chromium")
    parser.add_argument("--settle", type=float, default=12.0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    asyncio.run(main(parser.parse_args()))
