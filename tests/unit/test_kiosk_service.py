"""The kiosk as a service: its config file, the health answer, its exit codes, and the rule
that a kiosk needs nothing from `server/`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from booth_client.config import ConfigError, load_config
from booth_client.health import respond

ROOT = Path(__file__).resolve().parents[2]


def _kiosk(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LOKET_BOOTH_")}
    return subprocess.run(
        [sys.executable, "-m", "booth_client", *args],
        cwd=ROOT,
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_booth_client_never_loads_server_modules() -> None:
    """Every booth_client module imports with `server` made unimportable, and nothing
    under server/ ends up loaded: a kiosk ships booth_client and signaling only."""
    script = textwrap.dedent(
        """
        import importlib, pkgutil, sys

        class NoServer:
            def find_spec(self, name, path=None, target=None):
                if name == "server" or name.startswith("server."):
                    raise ImportError(f"the kiosk imported {name}")
                return None

        sys.meta_path.insert(0, NoServer())
        import booth_client
        names = [m.name for m in pkgutil.walk_packages(booth_client.__path__, "booth_client.")
                 if m.name != "booth_client.__main__"]
        for name in names:
            importlib.import_module(name)
        loaded = sorted(m for m in sys.modules if m == "server" or m.startswith("server."))
        print(len(names), loaded)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    count, loaded = result.stdout.split(" ", 1)
    assert int(count) >= 20  # the walk really found the package's modules
    assert loaded.strip() == "[]"


def test_config_file_then_environment_then_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "booth.toml"
    path.write_text(
        textwrap.dedent(
            """
            server_url = "https://loket.example"
            source = "v4l2"
            document_idle_fps = 1.5
            [face_camera]
            device = "/dev/video4"
            width = 1280
            height = 720
            [microphone]
            backend = "pulse"
            """
        )
    )
    monkeypatch.setenv("LOKET_BOOTH_CREDENTIAL", "lkb_b1.secret")
    monkeypatch.setenv("LOKET_BOOTH_FACE_CAMERA__FPS", "10")
    monkeypatch.setenv("LOKET_BOOTH_SERVER_URL", "https://other.example")
    config = load_config(path, health="127.0.0.1:9110")
    assert config.server_url == "https://other.example"  # environment over the file
    assert config.face_camera.device == "/dev/video4"  # the file's, merged per field
    assert (config.face_camera.width, config.face_camera.fps) == (1280, 10.0)
    assert config.microphone.backend == "pulse"
    assert config.document_idle_fps == 1.5
    assert config.health == "127.0.0.1:9110"  # the flag
    assert config.credential.get_secret_value() == "lkb_b1.secret"
    flagged = load_config(path, server_url="https://flag.example")
    assert flagged.server_url == "https://flag.example"  # flags over everything


def test_config_errors_name_the_file_the_field_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOKET_BOOTH_CREDENTIAL", raising=False)
    path = tmp_path / "booth.toml"
    path.write_text('source = "v4l2"\n[document_camera]\nfps = 120\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    fps, credential = sorted(str(caught.value).splitlines(), key=lambda line: "credential" in line)
    assert fps.startswith(f"{path}: document_camera.fps: Input should be less than or equal to 60")
    assert fps.endswith("(fix it there, or override it with LOKET_BOOTH_DOCUMENT_CAMERA__FPS)")
    assert credential.startswith(f"{path}: credential: missing; set LOKET_BOOTH_CREDENTIAL=")

    path.write_text('sorce = "v4l2"\n')
    with pytest.raises(ConfigError, match=r"unknown field\(s\) sorce"):
        load_config(path)
    path.write_text("source = v4l2\n")
    with pytest.raises(ConfigError, match="not readable TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml")
    monkeypatch.setenv("LOKET_BOOTH_CREDENTIAL", "lkb_b1.secret")
    with pytest.raises(ConfigError, match="use HOST:PORT"):
        load_config(None, health="9110")
    with pytest.raises(ConfigError, match=r"source=file needs face_camera\.device"):
        load_config(None, source="file")


def test_health_answers_200_when_connected_503_otherwise_and_only_healthz() -> None:
    state = {"connected": True, "state": "queued", "outbox_depth": 0}
    answer = respond(b"GET /healthz HTTP/1.1\r\n", lambda: state)
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK") and json.loads(body) == state
    assert f"Content-Length: {len(body)}".encode() in head
    down = respond(b"GET /healthz?x=1 HTTP/1.1\r\n", lambda: {**state, "connected": False})
    assert down.startswith(b"HTTP/1.1 503 Service Unavailable")
    assert respond(b"HEAD /healthz HTTP/1.1\r\n", lambda: state).endswith(b"\r\n\r\n")
    assert respond(b"GET / HTTP/1.1\r\n", lambda: state).startswith(b"HTTP/1.1 404")
    assert respond(b"POST /healthz HTTP/1.1\r\n", lambda: state).startswith(b"HTTP/1.1 405")
    assert respond(b"\r\n", lambda: state).startswith(b"HTTP/1.1 405")


def test_kiosk_exits_2_on_a_bad_config_and_3_without_its_camera(tmp_path: Path) -> None:
    result = _kiosk("--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert f"{tmp_path / 'nope.toml'}: no such file" in result.stderr

    path = tmp_path / "booth.toml"
    missing = tmp_path / "video0"  # no such device here (nor any real camera)
    path.write_text(f'source = "v4l2"\n[face_camera]\ndevice = "{missing}"\n')
    result = _kiosk("--config", str(path), env={"LOKET_BOOTH_CREDENTIAL": "lkb_b1.secret"})
    assert result.returncode == 3, result.stderr
    assert f"no camera at {missing}: check the cable or set face_camera.device" in result.stderr
