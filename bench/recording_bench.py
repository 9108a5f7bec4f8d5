"""What recording a session costs the kiosk (issue 23), measured.

    scripts/netns-run uv run --frozen --offline python bench/recording_bench.py \
        [--seconds 10] [--windows 3] [--line-call-s 30]

**Kiosk CPU, recording on vs off** (goal <= 1.3x). Two `loket booth` processes with
synthetic media (face camera 640x360 at 15 fps, a participant who speaks all the time),
the same in every way except `[recording] enabled`, each in a focused call with its own
aiortc officer that talks (a tone) and shows a picture (320x240 at 10 fps), all through one
live server. Both run at the same time and their CPU (utime + stime from /proc) is read
over the same windows, so a noisy neighbour costs both alike. A ratio is printed only if
both did the same work: the faces their officers decoded at rates within 10 % of each
other, both officers' voices heard, and the recording kiosk sealed segments for the whole
time (so it did record).

**On a 1 Mbit/s branch line** (the `1mbit` profile of tests/support/branch_link.py: `tbf`
on a veth pair into a branch namespace; needs root, as scripts/netns-run gives): one
recording kiosk in a focused call of `--line-call-s` seconds, then the session ends. From
the kiosk's own log: the bytes of every segment (storage per session-minute: what the
server keeps, and what the kiosk uploads), what was still to upload when the session
ended, and the time from the session's end until the server closed the recording.

Prints a JSON line per part.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from signaling.messages import EndSession

WIDTH, HEIGHT, FPS = 640, 360, 15.0  # the face camera (--face)
TICK = os.sysconf("SC_CLK_TCK")
SEGMENT_S = 10.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def _at(row: dict[str, object]) -> float:
    return datetime.fromisoformat(str(row["timestamp"]).replace("Z", "+00:00")).timestamp()


def _recording_env(on: bool) -> dict[str, str]:
    return {
        "LOKET_BOOTH_RECORDING__ENABLED": "true" if on else "false",
        "LOKET_BOOTH_FACE_CAMERA__WIDTH": str(WIDTH),
        "LOKET_BOOTH_FACE_CAMERA__HEIGHT": str(HEIGHT),
        "LOKET_BOOTH_FACE_CAMERA__FPS": str(FPS),
    }


async def cpu_part(seconds: float, windows: int, control: bool = False) -> dict[str, Any]:
    from tests.support.accounts import add_user
    from tests.support.booths import booth_processes, log_events, session_of
    from tests.support.live_server import running_server, server_settings
    from tests.support.talking_cso import TalkingCso

    with tempfile.TemporaryDirectory() as tmp:
        settings = server_settings(Path(tmp) / "server", log_level="ERROR")
        async with running_server(settings) as server:
            csos: list[TalkingCso] = []
            try:
                async with booth_processes(
                    server, 2, Path(tmp) / "booths", speak={1: "always", 2: "always"}
                ) as booths:
                    # booth-1 records, booth-2 does not (the helper started both with the
                    # defaults: restarted with ours before any officer is there).
                    for booth, on in zip(booths, (not control, False), strict=True):
                        await booth.stop()
                        booth.env.update(_recording_env(on))
                        await booth.start()
                    for name in ("siti", "budi"):
                        await add_user(server, name, capacity=1)
                        cso = TalkingCso(server, name, picture=True)
                        await cso.start()
                        csos.append(cso)
                    await _wait(lambda: all(len(c.calls) == 1 for c in csos), 90, "two calls")
                    await _wait(lambda: all(_faces(c) > 30 for c in csos), 60, "faces")
                    await asyncio.sleep(3)  # settle: encoders at their bitrate
                    by_label = {
                        b.label: c for b in booths for c in csos if session_of(server, b) in c.calls
                    }
                    faces0 = {lb: _faces(c) for lb, c in by_label.items()}
                    pids = {b.label: b.process.pid for b in booths if b.process}
                    cores: dict[str, list[float]] = {lb: [] for lb in pids}
                    for _ in range(windows):
                        before = {lb: cpu_seconds(pid) for lb, pid in pids.items()}
                        t0 = time.monotonic()
                        await asyncio.sleep(seconds)
                        dt = time.monotonic() - t0
                        for lb, pid in pids.items():
                            cores[lb].append((cpu_seconds(pid) - before[lb]) / dt)
                    span = seconds * windows
                    face_fps = {lb: (_faces(c) - faces0[lb]) / span for lb, c in by_label.items()}
                    heard = {b.label: b.energy(0.0) > 0 for b in booths}
                    sealed = [e for e in log_events(booths[0]) if e.get("event") in (
                        "recording_segment_stored", "recording_started")]  # fmt: skip
            finally:
                for cso in csos:
                    await cso.stop()
    cores_on, cores_off = (sum(cores[lb]) / windows for lb in ("booth-1", "booth-2"))
    report: dict[str, Any] = {
        "part": "kiosk_cpu",
        "call": f"face {WIDTH}x{HEIGHT}@{FPS:g}, focused, both voices, officer picture",
        "recording_cores": round(cores_on, 3),
        "baseline_cores": round(cores_off, 3),
        "windows_recording": [round(c, 3) for c in cores["booth-1"]],
        "windows_baseline": [round(c, 3) for c in cores["booth-2"]],
        "face_fps": {k: round(v, 1) for k, v in face_fps.items()},
        "load": os.getloadavg(),
    }
    fps_on, fps_off = face_fps["booth-1"], face_fps["booth-2"]
    problems = []
    if abs(fps_on - fps_off) > 0.1 * max(fps_on, fps_off):
        problems.append(f"faces decoded at {fps_on:.1f} vs {fps_off:.1f} fps")
    if not all(heard.values()):
        problems.append(f"an officer's voice was not heard: {heard}")
    if control:
        report["part"] = "kiosk_cpu_control (neither records: the two kiosks' own spread)"
    elif not any(e.get("event") == "recording_started" for e in sealed):
        problems.append("the recording kiosk did not record")
    if problems:
        report["ratio"] = None
        report["refused"] = "; ".join(problems)
    else:
        report["ratio"] = round(cores_on / cores_off, 3)
    return report


def _faces(cso: Any) -> int:
    return sum(p.heard.video_frames for p in cso.calls.values())


async def _wait(predicate: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"recording bench: {what} did not happen within {within:.0f} s")
        await asyncio.sleep(0.1)


async def line_part(call_s: float) -> dict[str, Any]:
    from booth_client.ice import use_host_addresses
    from tests.support.booths import log_events
    from tests.support.branch_link import PROFILES, missing_tools
    from tests.support.field import CSO_NAME, FieldCso, branch_office

    if missing := missing_tools():
        return {"part": "line_1mbit", "skipped": f"missing {missing}"}
    with tempfile.TemporaryDirectory() as tmp:
        async with branch_office(PROFILES["1mbit"], Path(tmp), (WIDTH, HEIGHT)) as branch:
            branch.booth.env.update(_recording_env(True))
            use_host_addresses([branch.link.outside_ip])
            cso = FieldCso(branch.server, CSO_NAME)
            await cso.start()
            try:
                await branch.booth.start()
                await _wait(lambda: any(t.face for t in cso.timelines.values()), 90, "a face")
                line0 = await branch.link.counters()
                began = time.monotonic()
                await asyncio.sleep(call_s)
                [session_id] = cso.calls
                line1 = await branch.link.counters()
                during = time.monotonic() - began
                await cso._send(EndSession(session_id=session_id))
                booth = branch.booth
                await _wait(lambda: log_events(booth, "recording_closed"), 300, "the close")
                events = log_events(booth)
            finally:
                await cso.stop()
                use_host_addresses([])
    ended = next(e for e in events if e.get("event") == "recording_ended")
    closed = next(e for e in events if e.get("event") == "recording_closed")
    stored = [e for e in events if e.get("event") == "recording_segment_stored"]
    total = sum(int(str(e["bytes"])) for e in stored)
    seconds = float(str(ended["seconds"]))
    at_end = [e for e in stored if _at(e) <= _at(ended)]
    return {
        "part": "line_1mbit",
        "call_s": round(seconds, 1),
        "segments": len(stored),
        "storage_bytes_per_minute": round(total / seconds * 60),
        "upload_kbit_s_while_recording": round(total * 8 / seconds / 1000, 1),
        "uplink_kbit_s_during_call_all": round(
            (line1.sent_bytes - line0.sent_bytes) * 8 / during / 1000, 1
        ),
        "stored_before_end": len(at_end),
        "end_to_closed_s": round(_at(closed) - _at(ended), 2),
        "worker_cores": round(float(str(ended["worker_cpu_s"])) / seconds, 3),
        "load": os.getloadavg(),
    }


async def main(args: argparse.Namespace) -> None:
    if args.control:
        print(json.dumps(await cpu_part(args.seconds, args.windows, control=True)), flush=True)
    print(json.dumps(await cpu_part(args.seconds, args.windows)), flush=True)
    if args.line_call_s > 0:
        with contextlib.suppress(KeyboardInterrupt):
            print(json.dumps(await line_part(args.line_call_s)), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="one CPU window")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--face", default="640x360", help="the face camera, WxH at 15 fps")
    parser.add_argument("--control", action="store_true", help="first, both kiosks not recording")
    parser.add_argument("--line-call-s", type=float, default=30.0, help="0: no line part")
    parsed = parser.parse_args()
    WIDTH, HEIGHT = (int(n) for n in parsed.face.split("x"))
    asyncio.run(main(parsed))
