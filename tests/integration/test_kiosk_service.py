"""`loket booth --config FILE` as a real process against a real server: healthy once
connected, and on SIGTERM it leaves the queue (the server frees its place at once, not
after the grace period), exits 0 within seconds, and logs JSON lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time

import httpx

from tests.support.accounts import enrol_booth
from tests.support.live_server import free_port, running_server, server_settings


async def _health(url: str, http: httpx.AsyncClient) -> tuple[int, dict[str, object]] | None:
    with contextlib.suppress(httpx.HTTPError):
        response = await http.get(url)
        return response.status_code, response.json()
    return None


async def test_kiosk_service_reports_health_and_leaves_the_queue_on_sigterm(tmp_path) -> None:
    # A grace period far beyond the test: only a real `leave` frees the place in time.
    settings = server_settings(tmp_path / "server", grace_period=120)
    async with running_server(settings) as server:
        _, credential = await enrol_booth(server, "kiosk-1")
        port = free_port()
        config = tmp_path / "booth.toml"
        config.write_text(
            f'server_url = "{server.base_url}"\n'
            f'health = "127.0.0.1:{port}"\n'
            f'outbox_dir = "{tmp_path / "outbox"}"\n'
            'audio_sink = "null"\n'
            "[face_camera]\nwidth = 320\nheight = 240\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOKET_")}
        env["LOKET_BOOTH_CREDENTIAL"] = credential  # as the unit's EnvironmentFile gives it
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server.cli", "booth", "--config", str(config),
            env=env, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}/healthz"
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                answers = []
                async with asyncio.timeout(30):
                    while True:
                        answer = await _health(url, http)
                        if answer is not None:
                            answers.append(answer)
                            if answer[0] == 200 and answer[1]["state"] == "queued":
                                break
                        await asyncio.sleep(0.1)
            _, body = answers[-1]
            assert body["connected"] is True and body["media_up"] is True
            assert body["outbox_depth"] == 0 and body["session"] is None
            assert body["source"] == "synthetic" and body["document_fps"] == 2.0
            assert all(code == 503 for code, b in answers if not b["connected"])
            assert server.app.state.floor.waiting == 1

            proc.send_signal(signal.SIGTERM)
            began = time.monotonic()
            code = await asyncio.wait_for(proc.wait(), 10)
            assert code == 0
            assert time.monotonic() - began < 5
            assert server.app.state.floor.waiting == 0  # it left; a lost kiosk would wait
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.stderr is not None
        lines = [json.loads(line) for line in (await proc.stderr.read()).splitlines()]
        events = [line["event"] for line in lines]
        assert events.index("checked_in") < events.index("booth_signal")
        assert events[-2:] == ["booth_stopping", "booth_stopped"]
        assert lines[-2]["outbox_pending"] == 0
        assert credential not in json.dumps(lines)  # no secret in the logs
