"""The kiosk's visit, kept across a restart: the server's resume token for this booth.

A kiosk restarted within the server's grace period (the participant is still in the
booth) says `hello` with the token it had, and the server resumes the visit (same session,
the officer is not told the booth left) instead of starting a new one. The file holds the
token with the server and booth it belongs to, so a kiosk moved to another server or
credential starts afresh; it is written whole, fsynced, mode 0600 (with the booth's
credential, the token resumes its visit).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import structlog

from booth_client.outbox import fsync_dir, write_durably

log = structlog.get_logger("loket.booth.visit")


class VisitFile:
    def __init__(self, path: Path, *, server_url: str, booth: str) -> None:
        self.path = path
        self._owner = {"server": server_url.rstrip("/"), "booth": booth}

    def load(self) -> str | None:
        """The resume token of this booth's last visit on this server, if kept."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            log.warning("visit_file_unreadable", path=str(self.path))
            return None
        if not isinstance(data, dict) or any(data.get(k) != v for k, v in self._owner.items()):
            return None
        token = data.get("resume_token")
        return token if isinstance(token, str) and token else None

    def save(self, resume_token: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_durably(self.path, json.dumps({**self._owner, "resume_token": resume_token}).encode())
        fsync_dir(self.path.parent)

    def forget(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
            fsync_dir(self.path.parent)
