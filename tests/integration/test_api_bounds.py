"""The REST API's bounds: /openapi.json states every limit the validation enforces, and no
request a client can build from that schema (or from near it) makes the server answer 5xx.

The fuzz test runs `loket serve` as its own process, on SQLite and on PostgreSQL, and sends
hypothesis-generated requests over real HTTP as a supervisor and as an auditor: every GET
operation of the schema, and the JSON bodies of the token and decision POSTs. Values are
drawn from the schema (enums, patterns, bounds) and from just outside it (huge integers,
far dates, control characters, wrong types). Every answer is below 500, and every error
has the project's shape (server/api/errors.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.adapters.sql import migrate
from server.adapters.sql.wiring import open_accounts, open_records
from server.app import create_app
from server.auth.service import AuthService
from server.auth.tokens import TokenIssuer
from server.principal import AccountRole
from server.settings import Settings
from tests.support.accounts import PASSWORD
from tests.support.claims import add_claim
from tests.support.live_server import free_port, server_settings

# Parts of a request the schema cannot bound with a constant, each with the reason.
UNBOUNDED: dict[tuple[str, str], str] = {
    # The picture's size limit is a setting (LOKET_MAX_DOCUMENT_BYTES), enforced with a
    # 413 from Content-Length before the body is read and again while it is read.
    ("POST /api/claims/{claim_id}/documents", "body"): "binary, limited by a setting",
    # Likewise a chunk: LOKET_UPLOAD_CHUNK_MAX_BYTES, 413 `chunk_too_large`.
    ("PATCH /api/uploads/{upload_id}", "body"): "binary, limited by a setting",
    # And a recording segment's chunk: the same setting (server/api/recordings.py).
    ("PATCH /api/recording-uploads/{upload_id}", "body"): "binary, limited by a setting",
}


# --- the schema says what is enforced ------------------------------------------------------


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def _unbounded(spec: dict[str, Any], schema: dict[str, Any], where: str) -> Iterator[str]:
    """Every place under `schema` that accepts unbounded input."""
    schema = _resolve(spec, schema)
    for branch in schema.get("anyOf", []) + schema.get("oneOf", []):
        yield from _unbounded(spec, branch, where)
    kind = schema.get("type")
    if kind in ("integer", "number"):
        if "minimum" not in schema and "exclusiveMinimum" not in schema:
            yield f"{where}: no minimum"
        if "maximum" not in schema and "exclusiveMaximum" not in schema:
            yield f"{where}: no maximum"
    elif kind == "string" and "enum" not in schema and "maxLength" not in schema:
        yield f"{where}: no maxLength"
    elif kind == "array":
        if "maxItems" not in schema:
            yield f"{where}: no maxItems"
        yield from _unbounded(spec, schema.get("items", {}), f"{where}[]")
    elif kind == "object":
        if schema.get("additionalProperties", True) is not False:
            yield f"{where}: accepts any other property"
        for name, prop in schema.get("properties", {}).items():
            yield from _unbounded(spec, prop, f"{where}.{name}")


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            yield f"{method.upper()} {path}", op


def test_openapi_bounds_every_parameter_and_body_field(tmp_path) -> None:
    spec = create_app(server_settings(tmp_path)).openapi()
    problems: list[str] = []
    for name, op in _operations(spec):
        for param in op.get("parameters", []):
            where = f"{name} {param['in']} {param['name']}"
            problems += _unbounded(spec, param["schema"], where)
        for media, content in op.get("requestBody", {}).get("content", {}).items():
            if (name, "body") in UNBOUNDED:
                continue
            problems += _unbounded(spec, content["schema"], f"{name} body ({media})")
    assert problems == [], "\n".join(problems)
    # Routes that must send a header say so: a missing one is refused.
    for name, op in _operations(spec):
        for param in op.get("parameters", []):
            if param["name"] == "Idempotency-Key":
                assert param["required"] is True, name


# --- fuzzing from the schema ----------------------------------------------------------------

PRINTABLE = st.characters(exclude_categories=["Cs"])  # any text UTF-8 can carry
LATIN1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
OFFSETS = st.sampled_from(
    [UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=23, minutes=59))]
)


def _datetimes() -> st.SearchStrategy[str]:
    aware = st.builds(
        lambda when, tz: when.replace(tzinfo=tz).isoformat(),
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
        OFFSETS,
    )
    naive = st.datetimes().map(lambda d: d.isoformat())
    return st.one_of(aware, naive, st.integers().map(str), st.text(PRINTABLE, max_size=50))


def _integers(schema: dict[str, Any]) -> st.SearchStrategy[int]:
    low, high = schema.get("minimum"), schema.get("maximum")
    near = st.integers(None if low is None else low - 2, None if high is None else high + 2)
    return st.one_of(near, st.integers(), st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**30]))


def _strings(schema: dict[str, Any], known: list[str]) -> st.SearchStrategy[str]:
    limit = schema.get("maxLength", 100)
    options = [st.text(PRINTABLE, max_size=limit + 3)]
    if "enum" in schema:
        options.append(st.sampled_from(schema["enum"]))
    if "pattern" in schema:
        options.append(st.from_regex(schema["pattern"], fullmatch=True))
    if schema.get("format") == "date-time":
        options.append(_datetimes())
    if known:
        options.append(st.sampled_from(known))
    return st.one_of(options)


def _value(
    spec: dict[str, Any], schema: dict[str, Any], known: list[str]
) -> st.SearchStrategy[Any]:
    """A JSON value shaped by `schema`, sometimes a little off it."""
    schema = _resolve(spec, schema)
    if "anyOf" in schema:
        return st.one_of([_value(spec, s, known) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "integer":
        return _integers(schema)
    if kind == "string":
        return _strings(schema, known)
    if kind == "array":
        item = _value(spec, schema.get("items", {}), known)
        return st.lists(item, max_size=schema.get("maxItems", 5) + 2)
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: _value(spec, v, known) for k, v in props.items() if k in required},
            optional={
                **{k: _value(spec, v, known) for k, v in props.items() if k not in required},
                "unexpected": st.integers(),
            },
        )
    if kind == "null":
        return st.none()
    return st.one_of(st.none(), st.booleans(), st.integers(), st.text(PRINTABLE, max_size=20))


def _as_query(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@st.composite
def _request(draw: st.DrawFn, spec: dict[str, Any], known: dict[str, list[str]]) -> dict[str, Any]:
    name, op = draw(st.sampled_from(sorted(_fuzzed(spec).items())))
    method, path = name.split(" ", 1)
    query: dict[str, str] = {}
    headers: dict[str, bytes] = {}
    for param in op.get("parameters", []):
        pname, where = param["name"], param["in"]
        if not param.get("required") and draw(st.booleans()):
            continue
        if where == "header":
            text = draw(st.text(LATIN1, min_size=1, max_size=140)).strip() or "k"
            headers[pname] = text.encode("latin-1")  # what HTTP/1.1 can carry
            continue
        value = draw(_value(spec, param["schema"], known.get(pname, [])))
        if value is None:
            continue
        if where == "path":
            text = _as_query(value) or "x"
            path = path.replace("{" + pname + "}", quote(text, safe=""))
        else:
            query[pname] = _as_query(value)
    body = None
    content = op.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        body = draw(st.one_of(
            _value(spec, content["application/json"]["schema"], []),
            st.recursive(st.none() | st.integers() | st.text(PRINTABLE, max_size=10),
                         lambda inner: st.lists(inner, max_size=3), max_leaves=5),
        ))  # fmt: skip
    return {"method": method, "path": path, "params": query, "headers": headers, "json": body}


def _fuzzed(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every GET, and the JSON POSTs that cost no password hash (logins are left out:
    each one is an argon2 verification, and its busy answer, 503, is by design)."""
    posts = {
        "POST /api/auth/refresh", "POST /api/auth/logout",
        "POST /api/documents/{document_id}/verdict", "POST /api/claims/{claim_id}/outcome",
    }  # fmt: skip
    return {name: op for name, op in _operations(spec) if name.startswith("GET ") or name in posts}


@contextlib.contextmanager
def _serve(settings: Settings, log: Path) -> Iterator[str]:
    """`loket serve` as its own process; yields its base URL once ready."""
    port = free_port()
    env = {
        **os.environ,
        "LOKET_DATA_DIR": str(settings.data_dir),
        "LOKET_JWT_SECRET": settings.jwt_secret.get_secret_value(),  # type: ignore[union-attr]
        "LOKET_LOG_LEVEL": "WARNING",
        "LOKET_LOG_JSON": "false",
        **({"LOKET_DATABASE_URL": settings.database_url} if settings.database_url else {}),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


async def _prepare(settings: Settings) -> dict[str, list[str]]:
    """A supervisor, an auditor and a few claims; returns values the fuzzer should try
    besides its own (they reach the paths behind a found record)."""
    await migrate.upgrade(settings)
    engine, store = await open_accounts(settings)
    issuer = TokenIssuer("x" * 32, access_ttl=600, refresh_ttl=3600)
    auth = AuthService(store, issuer, None, settings)
    try:
        for name, role in (("budi", AccountRole.SUPERVISOR), ("audrey", AccountRole.AUDITOR)):
            await auth.add_user(name, PASSWORD, role=role, display_name=name, branch="jkt01",
                                pools=frozenset({"*"}))  # fmt: skip
    finally:
        auth.close()
        await engine.dispose()
    async with open_records(settings) as (_, records):
        claims = [await add_claim(records, f"FZ-{i:04d}") for i in range(3)]
    return {
        "claim_id": [c.claim_id for c in claims],
        "booking_code": [c.booking_code or "" for c in claims],
        "nik": [c.nik for c in claims],
        "branch": ["jkt01", "bdg01"],
        "cso": ["siti", "budi"],
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def fuzz_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return server_settings(tmp_path)
    from tests.support.postgres import create_database

    url = asyncio.run(create_database(request.getfixturevalue("postgres")))
    return server_settings(tmp_path, database_url=url)


def test_no_request_built_from_the_schema_gets_a_5xx(fuzz_settings: Settings, tmp_path) -> None:
    known = asyncio.run(_prepare(fuzz_settings))
    log = tmp_path / "server.log"
    with _serve(fuzz_settings, log) as base, httpx.Client(base_url=base, timeout=30) as http:
        spec = http.get("/openapi.json").json()
        tokens = {}
        for name in ("budi", "audrey"):
            res = http.post("/api/auth/login", json={"username": name, "password": PASSWORD})
            tokens[name] = res.json()["access_token"]
        seen: set[tuple[str, int]] = set()

        @settings(
            max_examples=300, deadline=None, database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )  # fmt: skip
        @given(_request(spec, known), st.sampled_from(sorted(tokens)))
        def check(req: dict[str, Any], who: str) -> None:
            headers = {"Authorization": f"Bearer {tokens[who]}", **req["headers"]}
            kwargs = {} if req["json"] is None else {"json": req["json"]}
            res = http.request(
                req["method"], req["path"], params=req["params"], headers=headers, **kwargs
            )
            seen.add((req["method"] + " " + req["path"].split("?")[0], res.status_code))
            failed = (req, res.status_code, res.text[:500], log.read_text()[-3000:])
            assert res.status_code < 500, failed
            if res.status_code >= 400:
                error = res.json()["error"]
                assert isinstance(error["code"], str) and isinstance(error["message"], str)

        check()
        # Logins are left out above (each costs a password hash); their text still reaches
        # the database: a NUL there is PostgreSQL's "invalid byte sequence", not a 500.
        for username in ("siti\x00", "\x00", "a\x7f"):
            res = http.post("/api/auth/login", json={"username": username, "password": "x"})
            assert res.status_code == 422, (res.status_code, res.text, log.read_text()[-3000:])
            assert res.json()["error"]["code"] == "invalid_request"
    statuses = {status for _, status in seen}
    assert 200 in statuses and 422 in statuses, seen  # both sides of the validation were reached
