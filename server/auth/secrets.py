"""The JWT signing key: from settings, or generated once into the data directory."""

from __future__ import annotations

import contextlib
import os
import secrets

from server.settings import Settings

SECRET_FILE = "jwt-secret"


def load_or_create_jwt_secret(settings: Settings) -> str:
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    path = settings.data_dir / SECRET_FILE
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().strip()
    fresh = secrets.token_urlsafe(48)
    # O_EXCL: if two processes start at once, one writes and both read the winner's key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(fresh)
        f.flush()
        os.fsync(f.fileno())
    return fresh
