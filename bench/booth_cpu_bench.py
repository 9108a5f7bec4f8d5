"""Booth CPU: a real kiosk streaming its face camera at 1280x720@15 plus the idle
document track (2 fps) vs a bare aiortc sender of the same synthetic tracks (goal <= 1.2x).

    scripts/netns-run uv run --frozen --offline python bench/booth_cpu_bench.py [--seconds 10]

Loket: `loket booth --config booth.toml` (source synthetic, face 1280x720@15, document
idle 2 fps, degradation policy on, health endpoint on) as its own process, checked in
through a live server and answered by an aiortc CSO stand-in here that offers face, audio
and document camera, decodes all three and focuses the booth (a booth not focused sends
its smaller hold layer instead).

Baseline: this script again as a child process (`--bare-sender`): one RTCPeerConnection
sending the same synthetic face scene, desk scene at 2 fps and tone, straight to an aiortc
receiver here (offer and answer over its stdin/stdout). No signaling, no relay, no feed.

Both run at the same time and their CPU (utime + stime from /proc) is read over the same
windows, so a noisy neighbour costs both alike. Prints one JSON line with each process's
cores and the ratio.
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

from booth_client.ice import use_host_addresses
from booth_client.peer import rtc_configuration
from booth_client.sources.synthetic import (
    SyntheticDeskTrack,
    SyntheticToneTrack,
    SyntheticVideoTrack,
)

WIDTH, HEIGHT, FPS, DOC_FPS = 1280, 720, 15.0, 2.0
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


# --- the bare sender (child) -----------------------------------------------------------------


async def bare_sender() -> None:
    """Answer the offer on stdin with the three synthetic tracks; run until stdin closes."""
    use_host_addresses(["127.0.0.1"])
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    offer = json.loads(await reader.readline())
    pc = RTCPeerConnection(rtc_configuration([]))
    await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
    pc.addTrack(SyntheticVideoTrack("bare", WIDTH, HEIGHT, FPS))
    pc.addTrack(SyntheticToneTrack(440))
    pc.addTrack(SyntheticDeskTrack("bare document camera", WIDTH, HEIGHT, lambda: DOC_FPS))
    await pc.setLocalDescription(await pc.createAnswer())
    print(json.dumps({"sdp": pc.localDescription.sdp}), flush=True)
    await reader.read()  # until the parent closes stdin
    await pc.close()


# --- the measuring side ----------------------------------------------------------------------


class Receiver:
    """An aiortc peer that offers recvonly face, audio and document video, as the console."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(rtc_configuration([]))
        self.frames = {"video": 0, "audio": 0, "document": 0}
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        self._document = self.pc.addTransceiver("video", direction="recvonly")
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        name = "document" if track is self._document.receiver.track else track.kind

        async def read() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    await track.recv()
                    self.frames[name] += 1

        self._tasks.append(asyncio.create_task(read()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()


@contextlib.asynccontextmanager
async def bare_pair():  # type: ignore[no-untyped-def]
    receiver = Receiver()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--bare-sender",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        await receiver.pc.setLocalDescription(await receiver.pc.createOffer())
        proc.stdin.write(json.dumps({"sdp": receiver.pc.localDescription.sdp}).encode() + b"\n")
        await proc.stdin.drain()
        answer = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        await receiver.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        yield proc, receiver
    finally:
        proc.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 10)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await receiver.close()


async def main(seconds: float, windows: int) -> None:
    from booth_client.cso_standin import CsoStandIn
    from tests.support.accounts import PASSWORD, add_user, enrol_booth
    from tests.support.live_server import free_port, running_server, server_settings
    from tests.support.talking_cso import wait_until

    use_host_addresses(["127.0.0.1"])
    with tempfile.TemporaryDirectory() as tmp:
        settings = server_settings(Path(tmp) / "server", log_level="ERROR")
        async with running_server(settings) as server:
            await add_user(server, "siti", capacity=1)
            _, credential = await enrol_booth(server, "bench-booth")
            config = Path(tmp) / "booth.toml"
            config.write_text(
                f'server_url = "{server.base_url}"\n'
                f'health = "127.0.0.1:{free_port()}"\n'
                f'outbox_dir = "{Path(tmp) / "outbox"}"\n'
                'audio_sink = "null"\nice_host_addresses = ["127.0.0.1"]\n'
                f"document_idle_fps = {DOC_FPS}\n"
                f"[face_camera]\nwidth = {WIDTH}\nheight = {HEIGHT}\nfps = {FPS}\n"
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith("LOKET_")}
            env["LOKET_BOOTH_CREDENTIAL"] = credential
            cso = CsoStandIn(server.base_url, "siti", PASSWORD)
            cso_task = asyncio.create_task(cso.run())
            booth = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "server.cli", "booth", "--config", str(config),
                env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            try:
                async with bare_pair() as (bare, receiver):
                    await cso.wait_connected(1, within=60)
                    [call] = cso.stats()
                    # Focused, as a booth in conversation: until then it sends its hold
                    # layer (240 px, 7.5 fps, no document camera), not what is measured.
                    await cso.focus(call.session_id)
                    await wait_until(lambda: call.video_frames > 30, 60)
                    await wait_until(lambda: receiver.frames["video"] > 30, 60)
                    await asyncio.sleep(3)  # settle: encoders at their bitrate
                    got0 = (call.video_frames, call.document_frames)
                    bare0 = (receiver.frames["video"], receiver.frames["document"])
                    loket_cores, bare_cores = [], []
                    for _ in range(windows):
                        b0, r0, t0 = cpu_seconds(booth.pid), cpu_seconds(bare.pid), time.monotonic()
                        await asyncio.sleep(seconds)
                        dt = time.monotonic() - t0
                        loket_cores.append((cpu_seconds(booth.pid) - b0) / dt)
                        bare_cores.append((cpu_seconds(bare.pid) - r0) / dt)
                    span = seconds * windows
                    fps = {
                        "loket_face": (call.video_frames - got0[0]) / span,
                        "loket_document": (call.document_frames - got0[1]) / span,
                        "bare_face": (receiver.frames["video"] - bare0[0]) / span,
                        "bare_document": (receiver.frames["document"] - bare0[1]) / span,
                    }
            finally:
                with contextlib.suppress(ProcessLookupError):
                    booth.terminate()
                await booth.wait()
                await cso.stop()
                cso_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await cso_task
    loket, bare = sum(loket_cores) / windows, sum(bare_cores) / windows
    for track in ("face", "document"):  # a ratio means nothing unless both sent the same
        ours, theirs = fps[f"loket_{track}"], fps[f"bare_{track}"]
        if abs(ours - theirs) > 0.1 * theirs:
            raise SystemExit(
                f"the kiosk's {track} track ran at {ours:.1f} fps, the bare sender's at "
                f"{theirs:.1f}: no ratio"
            )
    print(json.dumps({
        "booth_cpu_core": round(loket, 3), "bare_sender_cpu_core": round(bare, 3),
        "ratio": round(loket / bare, 2), "goal": 1.2,
        "windows": [[round(a, 3), round(b, 3)] for a, b in zip(loket_cores, bare_cores,
                                                               strict=True)],
        "received_fps": {k: round(v, 1) for k, v in fps.items()},
        "booth_exit": booth.returncode, "size": f"{WIDTH}x{HEIGHT}@{FPS:g}",
    }))  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="one measuring window")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--bare-sender", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_sender:
        asyncio.run(bare_sender())
    else:
        asyncio.run(main(args.seconds, args.windows))
