"""Baseline for upload_bench: a bare Starlette app under uvicorn (the server `loket serve`
uses, same HTTP options) whose POST handler reads the body, writes it to a file and makes
it durable as a document store must (fsync of the file and of its directory, in a worker
thread), then answers 201 {"size": n}. No auth, no checks, no encryption, no database.

    python bench/bare_upload.py PORT [DIR]
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import uuid
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

STORE = Path(sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="bare-upload-"))
STORE.mkdir(parents=True, exist_ok=True)


def _write_durably(data: bytes) -> None:
    path = STORE / uuid.uuid4().hex
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    fd = os.open(STORE, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def upload(request: Request) -> JSONResponse:
    body = await request.body()
    await asyncio.to_thread(_write_durably, body)
    return JSONResponse({"size": len(body)}, status_code=201)


async def ready(_: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/upload", upload, methods=["POST"]), Route("/readyz", ready)])

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
