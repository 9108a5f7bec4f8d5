"""The kiosk's logs: one JSON object per line on stderr (journald keeps them), no secrets,
no full NIKs. Its own small setup, so a kiosk needs nothing from `server/`.

The newest warning or error is kept (`last_problem`) for the health endpoint: a monitor
sees why a kiosk is unhealthy without reading its journal.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from dataclasses import dataclass
from typing import Any

import structlog

_SECRET_KEYS = frozenset(
    {"token", "access_token", "refresh_token", "password", "credential", "secret", "resume"}
)
# A NIK is 16 digits; keep the last four, as the server's logs do.
_NIK = re.compile(r"(?<!\d)\d{12}(\d{4})(?!\d)")
_PROBLEM_LEVELS = frozenset({"warning", "error", "critical", "exception"})


def mask(text: str) -> str:
    return _NIK.sub(lambda m: "*" * 12 + m.group(1), text)


@dataclass(frozen=True, slots=True)
class Problem:
    event: str
    level: str
    at: float  # unix time
    detail: str | None


_last: list[Problem] = []  # at most one: the newest


def last_problem() -> Problem | None:
    return _last[0] if _last else None


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: "[redacted]" if k in _SECRET_KEYS else _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_clean(v) for v in value)
    return value


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if not key.startswith("_"):
            event[key] = "[redacted]" if key in _SECRET_KEYS else _clean(event[key])
    return event


def _remember(_: Any, level: str, event: dict[str, Any]) -> dict[str, Any]:
    if level in _PROBLEM_LEVELS:
        detail = event.get("error") or event.get("note") or event.get("exception")
        problem = Problem(str(event.get("event")), level, time.time(),
                          str(detail)[:300] if detail is not None else None)  # fmt: skip
        _last[:] = [problem]
    return event


def configure_logging(level: str = "INFO") -> None:
    threshold = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    final: list[Any] = [
        structlog.processors.format_exc_info,
        _redact,
        _remember,
        structlog.processors.JSONRenderer(),
    ]
    structlog.configure(
        processors=[*shared, *final],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    # aiortc, aioice, websockets speak through the standard library: same lines.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
        )
    )
    handler.set_name("loket-booth")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "loket-booth"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(threshold, logging.WARNING))
