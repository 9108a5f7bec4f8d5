"""A kiosk's upload path in its own process, for the SIGKILL tests: put one capture in the
outbox (unless asked only to drain), then drain it with the real HTTP uploader.

    python tests/support/outbox_child.py DIR SERVER TOKEN CLAIM_ID KIND PICTURE [--drain-only]

LOKET_BOOTH_CRASH_POINT=before_upload|after_upload makes it SIGKILL itself mid-way.
Prints one JSON line: {"delivered": n, "pending": m}.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx

from booth_client.outbox import Outbox, drain_once, http_uploader


def capture(argv: list[str]) -> Outbox:
    directory, _, _, claim_id, kind, picture = argv[:6]
    outbox = Outbox(Path(directory))
    if "--drain-only" not in argv:
        outbox.put(claim_id, kind, Path(picture).read_bytes())
    return outbox


async def main(argv: list[str], outbox: Outbox) -> None:
    _, server, token = argv[:3]

    async def access_token() -> str:
        return token

    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        delivered, pending = await drain_once(outbox, http_uploader(http, access_token))
    print(json.dumps({"delivered": delivered, "pending": pending}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:], capture(sys.argv[1:])))
