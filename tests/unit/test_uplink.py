"""Uploads that yield to the call (booth_client.uplink): the token bucket, the pacer, and
a plain HTTP POST streamed through it over a real loopback socket."""

from __future__ import annotations

import asyncio
import time

import httpx

from booth_client.uplink import (
    BURST_BYTES,
    FLOOR_BPS,
    UPLOAD_UTILISATION,
    TokenBucket,
    UplinkPacer,
    upload_rate,
)


def test_the_upload_gets_what_the_call_leaves_never_less_than_the_floor() -> None:
    assert upload_rate(None, 400_000, FLOOR_BPS) is None  # a line never seen full: unpaced
    assert upload_rate(512_000, 200_000, FLOOR_BPS) == 512_000 * UPLOAD_UTILISATION - 200_000
    assert upload_rate(256_000, 250_000, FLOOR_BPS) == FLOOR_BPS  # it always progresses


def test_the_bucket_lets_a_burst_through_then_the_rate() -> None:
    bucket = TokenBucket()
    # 100 KB in 8 KB pieces at 80 kbit/s, all asked for at t=0: each waits its turn.
    delays = [bucket.delay(8_192, 80_000, 0.0) for _ in range(13)]
    assert delays[0] > 0 and delays == sorted(delays)  # the first beyond the saved 4 KB
    total = 13 * 8_192
    assert abs(delays[-1] - (total - BURST_BYTES) * 8 / 80_000) < 1e-6
    # Time passes: the bucket refills, but never beyond its burst.
    later = TokenBucket()
    later.delay(BURST_BYTES, 80_000, 0.0)
    assert later.delay(BURST_BYTES, 80_000, 100.0) == 0.0
    assert later.delay(1, 80_000, 100.0) > 0


async def test_the_pacer_paces_counts_and_says_when_an_upload_runs() -> None:
    starts: list[float] = []
    rate: list[float | None] = [400_000.0]
    pacer = UplinkPacer(lambda: rate[0], on_start=lambda: starts.append(time.monotonic()),
                        idle_s=0.3)  # fmt: skip
    assert pacer.usage() == (0, False)
    began = time.monotonic()
    for _ in range(10):
        await pacer.pace(4_096)  # 40 KB at 400 kbit/s: ~0.74 s after the first 4 KB
    took = time.monotonic() - began
    assert 0.6 <= took <= 3.0, took  # not sooner than the rate allows
    assert pacer.usage() == (40_960, True) and len(starts) == 1
    await asyncio.sleep(0.4)
    assert pacer.usage() == (40_960, False)  # idle: over
    rate[0] = None  # the capacity is not known: pieces go at once
    began = time.monotonic()
    for _ in range(10):
        await pacer.pace(4_096)
    assert time.monotonic() - began < 0.1 and len(starts) == 2  # a new upload began


async def test_a_plain_http_post_streamed_through_the_pacer_goes_at_its_rate() -> None:
    """A real HTTP POST over loopback: the server sees the body arrive at the pacer's rate
    (not all at once, as TCP would send it into a modem's queue)."""
    arrivals: list[tuple[float, int]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        chunked = b"transfer-encoding: chunked" in head.lower()
        assert chunked, head
        while True:
            size = int((await reader.readline()).strip(), 16)
            if size == 0:
                await reader.readline()
                break
            body = await reader.readexactly(size + 2)
            arrivals.append((time.monotonic(), len(body) - 2))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pacer = UplinkPacer(lambda: 320_000.0)  # 40 KB a second
    picture = bytes(60_000)

    async def body():  # type: ignore[no-untyped-def]
        for i in range(0, len(picture), 8_192):
            piece = picture[i : i + 8_192]
            await pacer.pace(len(piece))
            yield piece

    async with server, httpx.AsyncClient() as http:
        began = time.monotonic()
        res = await http.post(f"http://127.0.0.1:{port}/", content=body())
        took = time.monotonic() - began
    assert res.status_code == 200
    assert sum(n for _, n in arrivals) == len(picture)
    # (60 KB - the 4 KB burst) at 40 KB/s: ~1.4 s; the second half arrives in the second half.
    assert 1.2 <= took <= 4.0, took
    half = arrivals[0][0] + took / 2
    assert sum(n for t, n in arrivals if t >= half) >= len(picture) / 3
