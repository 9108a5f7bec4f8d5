"""Logs never carry a full NIK or a secret, including inside formatted exceptions."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from server.logging import configure_logging

NIK = "3171015508900007"
MASKED = "*" * 12 + "0007"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    structlog.reset_defaults()
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


def _fail_with_nik() -> None:
    raise ValueError(f"participant {NIK} not found")


@pytest.mark.parametrize("as_json", [True, False])
def test_nik_in_an_exception_message_is_masked(capsys, as_json: bool) -> None:
    configure_logging("INFO", json=as_json)
    log = structlog.get_logger("test")
    try:
        _fail_with_nik()
    except ValueError:
        log.exception("lookup_failed", claim_nik=NIK)
    err = capsys.readouterr().err
    assert "lookup_failed" in err and "Traceback" in err  # the traceback is still there
    assert NIK not in err
    assert f"participant {MASKED} not found" in err


def test_json_lines_stay_json_and_nested_values_are_masked(capsys) -> None:
    configure_logging("INFO", json=True)
    structlog.get_logger("test").warning(
        "odd", details={"nik": NIK, "password": "hunter2", "seen": [f"x{NIK}y", 1]},
        stack_info=True,
    )  # fmt: skip
    line = capsys.readouterr().err.strip().splitlines()[-1]
    event = json.loads(line)
    assert event["details"]["password"] == "[redacted]"
    assert event["details"]["nik"] == MASKED and event["details"]["seen"][0] == f"x{MASKED}y"
    assert "stack" in event and NIK not in line


def test_standard_library_loggers_are_redacted_too(capsys) -> None:
    # e.g. uvicorn's "Exception in ASGI application", asyncio's unretrieved task errors.
    configure_logging("INFO", json=True)
    try:
        _fail_with_nik()
    except ValueError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application %s", NIK)
    err = capsys.readouterr().err
    assert "Exception in ASGI application" in err and "ValueError" in err
    assert NIK not in err and MASKED in err
    event = json.loads(err.strip().splitlines()[-1])
    assert event["logger"] == "uvicorn.error" and event["level"] == "error"


def test_configuring_twice_keeps_one_handler(capsys) -> None:
    configure_logging("INFO", json=True)
    configure_logging("INFO", json=True)
    logging.getLogger("x").warning("once %s", NIK)
    err = capsys.readouterr().err
    assert err.count("once") == 1 and NIK not in err
