"""Baseline for upload_bench: a bare Starlette app under uvicorn (the server `loket serve`
uses, same HTTP options) whose POST handler reads the body and answers 201 {"size": n}.
No auth, no checks, no storage.

    python bench/bare_upload.py PORT
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


async def upload(request: Request) -> JSONResponse:
    body = await request.body()
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
