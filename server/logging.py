"""Structured JSON logs (structlog) that never carry secrets or full NIKs.

Redaction runs on what is finally written, not only on the fields as logged: exceptions
and stacks are formatted into text first (their messages often quote the input that
failed, NIKs included), then every string is masked, and the rendered line is masked once
more, so nothing added by a later processor or nested in a structure slips through. The
standard library's loggers (uvicorn, SQLAlchemy, asyncio: "Task exception was never
retrieved") go through the same chain.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import structlog

from server.domain.privacy import mask_niks_in

_SECRET_KEYS = frozenset(
    {"token", "access_token", "refresh_token", "password", "credential", "secret", "resume"}
)
REDACTED = "[redacted]"


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return mask_niks_in(value)
    if isinstance(value, dict):
        return {
            k: REDACTED if k in _SECRET_KEYS else _clean(v)
            for k, v in value.items()  # nested details: the same rules
        }
    if isinstance(value, list | tuple):
        return type(value)(_clean(v) for v in value)
    return value


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if key.startswith("_"):  # structlog's own (`_record`, `_from_structlog`)
            continue
        event[key] = REDACTED if key in _SECRET_KEYS else _clean(event[key])
    return event


class _MaskedRenderer:
    """Wraps the final renderer: the line it produces is masked before it is written."""

    def __init__(self, renderer: Callable[..., Any]) -> None:
        self._renderer = renderer

    def __call__(self, logger: Any, name: str, event: dict[str, Any]) -> Any:
        rendered = self._renderer(logger, name, event)
        if isinstance(rendered, bytes):
            return mask_niks_in(rendered.decode("utf-8", "replace")).encode()
        if isinstance(rendered, str):
            return mask_niks_in(rendered)
        return rendered


def _final_processors(json: bool) -> list[Any]:
    """Exceptions and stacks become text, then everything is redacted, then rendered."""
    renderer = (
        structlog.processors.JSONRenderer()
        if json  # exceptions arrive as text (format_exc_info): print them as they are
        else structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    )
    return [
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        _redact,
        _MaskedRenderer(renderer),
    ]


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    threshold = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, *_final_processors(json)],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    # The standard library's records (uvicorn's "Exception in ASGI application", ...):
    # the same redaction and rendering, on stderr.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *_final_processors(json)],
    )  # fmt: skip
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    handler.set_name("loket")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "loket"]:
        root.removeHandler(old)
    root.addHandler(handler)
    # uvicorn's own dictConfig (any uvicorn.Config with its default log_config in this
    # process) gives its loggers handlers that bypass the redaction: send them to ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate, named.disabled = True, False
    # Libraries speak from WARNING up, as before (Python's last-resort handler did that).
    root.setLevel(max(threshold, logging.WARNING))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a record comes (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass
