"""A real kiosk process (`python -m booth_client`, what `loket booth` runs) for tests: its
config file, its health endpoint, its JSON log lines, and killing or stopping it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.live_server import LiveServer, free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class KioskProcess:
    proc: asyncio.subprocess.Process
    health_url: str
    log_path: Path

    async def health(self) -> dict[str, Any] | None:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            async with httpx.AsyncClient(timeout=2) as http:
                answer: dict[str, Any] = (await http.get(self.health_url)).json()
                return answer
        return None

    async def until(
        self, condition: Callable[[dict[str, Any]], bool], within: float = 30.0
    ) -> dict[str, Any]:
        """The first health answer meeting `condition`."""
        async with asyncio.timeout(within):
            while True:
                if self.proc.returncode is not None:
                    raise AssertionError(
                        f"the kiosk exited ({self.proc.returncode}): {self.tail()}"
                    )
                body = await self.health()
                if body is not None and condition(body):
                    return body
                await asyncio.sleep(0.1)

    def events(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log_path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                lines.append(json.loads(line))
        return lines

    def tail(self, n: int = 8) -> list[str]:
        return [f"{e.get('event')} {e.get('error', '')}" for e in self.events()[-n:]]

    async def exited(self, within: float = 30.0) -> int:
        return await asyncio.wait_for(self.proc.wait(), within)

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        return await self.exited(15)


@contextlib.asynccontextmanager
async def kiosk_process(
    server: LiveServer,
    credential: str,
    state_dir: Path,
    *,
    crash: str | None = None,
    **config: Any,
) -> AsyncIterator[KioskProcess]:
    """`python -m booth_client --config FILE` with a synthetic participant who checks in
    by itself (give `booking_code`), the kiosk's state in `state_dir`, its health on a free
    port, and LOKET_BOOTH_CRASH_POINT=`crash` (booth_client.upload). Killed on exit."""
    port = free_port()
    path = _write_config(server, state_dir, port, config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOKET_")}
    env["LOKET_BOOTH_CREDENTIAL"] = credential
    env["PYTHONPATH"] = str(ROOT)
    if crash:
        env["LOKET_BOOTH_CRASH_POINT"] = crash
    log_path = state_dir / f"kiosk-{port}.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "booth_client", "--config", str(path),
            env=env, stderr=log, stdout=asyncio.subprocess.DEVNULL, cwd=str(ROOT),
        )  # fmt: skip
    kiosk = KioskProcess(proc, f"http://127.0.0.1:{port}/healthz", log_path)
    try:
        yield kiosk
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def _write_config(server: LiveServer, state_dir: Path, port: int, config: dict[str, Any]) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "server_url": server.base_url,
        "health": f"127.0.0.1:{port}",
        "state_dir": str(state_dir),
        "audio_sink": "null",
        "ice_host_addresses": ["127.0.0.1"],
        "reconnect_max": 2.0,
        **config,
    }
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    path = state_dir / f"booth-{port}.toml"
    path.write_text("\n".join(lines) + "\n[face_camera]\nwidth = 320\nheight = 240\n")
    return path
