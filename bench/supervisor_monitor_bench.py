"""Booth CPU while monitored vs not (goal: at most 1.6x, one more encoder).

    scripts/netns-run uv run python bench/supervisor_monitor_bench.py [--seconds 10]

A real kiosk process (`loket booth --source synthetic`, 640x480 at 15 fps) is served by an
aiortc officer who talks; its CPU (utime + stime from /proc) is measured for `--seconds`
in the call alone, then again while an aiortc supervisor monitors it (the booth's
send-only link: the participant's voice, the officer's voice, the video), then alone
again. Prints the ratio of monitored to the mean of the two unmonitored windows.

Measured 2026-11-29 (quiet machine): 0.21 core alone, 0.30 monitored: 1.43x. Before, 1.68-
1.84x: py-spy showed aiortc's per-sample Python loop for the RTP audio level as the
largest cost of the three extra audio senders (booth_client/aiortc_speedups.py).
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from booth_client.peer import rtc_configuration
from signaling.messages import (
    Answer,
    CloseLink,
    LinkClosed,
    LinkOpened,
    Offer,
    OpenLink,
    Role,
)
from tests.support.accounts import enrol_booth, user_token
from tests.support.live_server import running_server, server_settings
from tests.support.talking_cso import talking_cso, wait_until
from tests.support.ws_client import SignalClient

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


async def window(pid: int, seconds: float) -> float:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


async def main(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = server_settings(Path(tmp), log_level="ERROR")
        async with running_server(settings) as server:
            token = await user_token(server, "budi", role="supervisor")
            _, credential = await enrol_booth(server, "bench-booth")
            env = {
                **os.environ,
                "LOKET_BOOTH_SERVER_URL": server.base_url,
                "LOKET_BOOTH_CREDENTIAL": credential,
                "LOKET_BOOTH_ICE_HOST_ADDRESSES": "127.0.0.1",
                "LOKET_BOOTH_AUDIO_SINK": "null",
                "LOKET_BOOTH_SHOW_DOCUMENTS": "false",
                "LOKET_BOOTH_OUTBOX_DIR": str(Path(tmp) / "outbox"),
            }
            async with talking_cso(server, "siti", capacity=1) as siti:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "server.cli", "booth", "--source", "synthetic",
                    env=env, stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
                try:
                    await wait_until(lambda: siti.calls, 60)
                    session = next(iter(siti.calls))
                    await wait_until(lambda: siti.heard_from(session).video_frames > 30, 60)
                    await asyncio.sleep(3)  # settle
                    alone = await window(proc.pid, seconds)
                    sup = await SignalClient.connect(server.ws_url, Role.SUPERVISOR, token)
                    await sup.send(OpenLink(kind="monitor", session_id=session))
                    link = await sup.expect(LinkOpened)
                    offer = await sup.expect(Offer, timeout=30)
                    pc = RTCPeerConnection(rtc_configuration([]))
                    got = {"video": 0, "audio": 0}
                    tasks: list[asyncio.Task[None]] = []

                    def on_track(track: MediaStreamTrack) -> None:
                        async def run() -> None:
                            with contextlib.suppress(MediaStreamError):
                                while True:
                                    await track.recv()
                                    got[track.kind] += 1

                        tasks.append(asyncio.create_task(run()))

                    pc.on("track", on_track)
                    await pc.setRemoteDescription(RTCSessionDescription(offer.sdp, "offer"))
                    await pc.setLocalDescription(await pc.createAnswer())
                    await sup.send(Answer(session_id=link.link_id, sdp=pc.localDescription.sdp))
                    await wait_until(lambda: got["video"] > 30, 60)
                    await asyncio.sleep(2)
                    monitored = await window(proc.pid, seconds)
                    frames = dict(got)
                    await sup.send(CloseLink(link_id=link.link_id))
                    await sup.expect(LinkClosed)
                    for task in tasks:
                        task.cancel()
                    await pc.close()
                    await sup.close()
                    await asyncio.sleep(3)
                    after = await window(proc.pid, seconds)
                finally:
                    with contextlib.suppress(ProcessLookupError):
                        proc.terminate()
                    await proc.wait()
    base = (alone + after) / 2
    print(json.dumps({
        "booth_cpu_core_not_monitored": round(base, 3),
        "booth_cpu_core_monitored": round(monitored, 3),
        "ratio": round(monitored / base, 2), "goal": 1.6,
        "windows_s": seconds, "supervisor_received": frames,
        "unmonitored_windows": [round(alone, 3), round(after, 3)],
    }))  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    asyncio.run(main(parser.parse_args().seconds))
