"""The kiosk's uploads on loopback: a ~1.5 MB picture in resumable 64 KB chunks vs in one
POST, and what a cut line costs.

Both go through the kiosk's real transport (booth_client.upload.HttpTransport: the body
streamed in 8 KB pieces, each asked of a pacer, here none) to a real `loket serve` (its
own process, SQLite) from a booth in the claim's live session, alternating so a noisy
neighbour slows both alike. One POST is the baseline: the chunked path adds the creation
request and one PATCH per chunk, each staged encrypted and fsynced, then the whole picture
read back, hashed and stored as the POST stores it.

A cut: the line drops half-way through the picture (the pacer raises mid-chunk); the next
attempt creates the upload again, finds it, and goes on from the server's offset. Printed:
the bytes sent twice (what was in flight in the cut chunk: at most one chunk; a one-POST
upload would send everything again) and how long the second attempt took.

    uv run python bench/upload_resume_bench.py [--uploads 12] [--warmup 2]

One JSON line. The ratio is refused unless both sides stored every picture whole (the
server's SHA-256 of each document equals the picture's).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from common import free_port, loket_server
from upload_bench import live_session, percentiles, pictures, prepare

from booth_client.delivery import Delivery
from booth_client.outbox import OutboxItem
from booth_client.upload import CHUNK_BYTES, HttpTransport


class CutLine:
    """A pacer that lets `limit` bytes through, then the line drops."""

    def __init__(self, limit: int) -> None:
        self.limit, self.sent = limit, 0

    async def pace(self, nbytes: int) -> None:
        if self.sent + nbytes > self.limit:
            raise OSError("the line dropped")
        self.sent += nbytes

    def itself(self) -> CutLine:
        return self  # HttpTransport asks for the pacer before each piece


def _item(claim_id: str) -> OutboxItem:
    return OutboxItem(uuid.uuid4().hex, claim_id, "ktp", f"capture-{uuid.uuid4().hex}")


async def _timed(
    transport: HttpTransport, item: OutboxItem, data: bytes
) -> tuple[float, list[int]]:
    """ms, and every offset the transport reported (the second: where it started from)."""
    offsets: list[int] = []

    async def progress(sent: int, total: int) -> None:
        offsets.append(sent)

    began = time.perf_counter()
    answer: Delivery = await transport.upload(item, data, progress)
    elapsed = (time.perf_counter() - began) * 1000
    if answer.status != 201 or answer.body.get("sha256") != hashlib.sha256(data).hexdigest():
        raise RuntimeError(f"not stored whole: {answer.status} {str(answer.body)[:200]}")
    return elapsed, offsets


async def main(uploads: int, warmup: int) -> None:
    images = pictures(warmup + uploads + 3)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        accounts = await prepare(Path(tmp), port)
        async with (
            loket_server(Path(tmp), port) as base,
            httpx.AsyncClient(base_url=base, timeout=60) as http,
            live_session(port, accounts, http) as (token, claim_id),
        ):

            async def tokens(_http: httpx.AsyncClient, _force: bool) -> str:
                return str(token)

            chunked = HttpTransport(base, tokens)
            whole = HttpTransport(base, tokens, chunk_bytes=64 * 2**20)  # never chunks
            chunked_ms, whole_ms = [], []
            for index, data in enumerate(images[: warmup + uploads]):
                ours, _ = await _timed(chunked, _item(claim_id), data)
                theirs, _ = await _timed(whole, _item(claim_id), data)
                if index >= warmup:
                    chunked_ms.append(ours)
                    whole_ms.append(theirs)

            twice, resume_ms = [], []
            for data in images[warmup + uploads :]:
                item, line = _item(claim_id), CutLine(len(data) // 2)
                cut = HttpTransport(base, tokens, pacer=line.itself)
                try:
                    await _timed(cut, item, data)
                    raise RuntimeError("the cut line did not cut")
                except OSError:
                    pass
                await cut.aclose()
                ms, offsets = await _timed(chunked, item, data)
                resume_ms.append(ms)
                twice.append(line.sent - offsets[1])  # _chunks reports where it starts first
            await chunked.aclose()
            await whole.aclose()
    chunked_p, whole_p = percentiles(chunked_ms), percentiles(whole_ms)
    size = round(statistics.mean(len(i) for i in images))
    print(
        json.dumps(
            {
                "jpeg_bytes": size,
                "chunk_bytes": CHUNK_BYTES,
                "chunked_ms": chunked_p,
                "one_post_ms": whole_p,
                "ratio_p50": round(chunked_p["p50"] / whole_p["p50"], 2),
                "after_a_cut_half_way": {
                    "bytes_sent_twice_max": max(twice),
                    "one_post_would_resend": size,
                    "second_attempt_ms_p50": round(statistics.median(resume_ms), 1),
                },
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.uploads, args.warmup))
