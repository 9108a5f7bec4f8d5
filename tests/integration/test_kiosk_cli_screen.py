"""`loket booth --screen ...` as a real process: headless renders the participant's
screens to files and waits for the person at the screen (no synthetic check-in); a window
without a display is refused with what to do instead."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from booth_client.cli import EXIT_DEVICE
from tests.support.accounts import enrol_booth
from tests.support.live_server import running_server, server_settings


def _env(credential: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOKET_", "DISPLAY"))}
    env["LOKET_BOOTH_CREDENTIAL"] = credential
    env.pop("WAYLAND_DISPLAY", None)
    return env


async def test_headless_screen_renders_and_the_kiosk_waits_for_the_participant(tmp_path) -> None:
    async with running_server(server_settings(tmp_path / "server")) as server:
        _, credential = await enrol_booth(server, "kiosk-1")
        shots = tmp_path / "shots"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server.cli", "booth", "--server", server.base_url,
            "--screen", "headless", "--screen-dir", str(shots), "--audio-sink", "null",
            env=_env(credential), stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            async with asyncio.timeout(60):
                while not (shots / "current.png").exists() or not list(shots.glob("0*.png")):
                    await asyncio.sleep(0.2)
                while not server.app.state.floor.core.booths:
                    await asyncio.sleep(0.1)  # connected, and known to the floor
            await asyncio.sleep(1.0)
            # The person at the screen checks in, not the synthetic participant.
            assert server.app.state.floor.waiting == 0
            assert (shots / "current.png").stat().st_size > 10_000  # a drawn screen
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 15) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_a_window_without_a_display_is_refused_with_advice(tmp_path) -> None:
    async with running_server(server_settings(tmp_path / "server")) as server:
        _, credential = await enrol_booth(server, "kiosk-2")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server.cli", "booth", "--server", server.base_url,
            "--screen", "window", "--audio-sink", "null",
            env=_env(credential), stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == EXIT_DEVICE
        assert b"--screen headless" in err
