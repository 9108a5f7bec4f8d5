"""Capture round trip: a `request_capture` received by the kiosk → the picture
acknowledged by the server, for a 1920x1080 document camera on loopback.

The kiosk side is the real one (booth_client.capture_agent): a burst of five frames from
the ring buffer (rendered scenes of a KTP on a desk, rendered before timing starts), the
OpenCV pipeline (sharpest frame, corners, rectification, blur and glare scores), JPEG
encode and hash, the fsynced on-disk outbox, and the HTTP upload with its Idempotency-Key
to a real `loket serve` process, in a live session reached the real way (sockets,
check-in, the CSO accepts). Reported split into pipeline, encode and upload (the rest).

Baseline in the same run: the same JPEGs POSTed to a bare server that writes and fsyncs
them (bench/bare_upload.py), i.e. the least any durable upload can cost.

    uv run python bench/capture_roundtrip_bench.py [--captures 20]

Prints one JSON line; goal: total p95 <= 250 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import httpx
from common import free_port, loket_server
from upload_bench import bare_server, live_session, percentiles, prepare

from booth_client.capture import CaptureConfig, FrameRing
from booth_client.capture_agent import CaptureAgent, RingCamera
from booth_client.delivery import Delivery
from booth_client.outbox import Outbox, OutboxItem
from booth_client.sources.scenes import render_burst
from server.logging import configure_logging
from signaling.messages import CaptureStatus, Envelope, RequestCapture


async def main(captures: int) -> None:
    configure_logging("WARNING")
    config = CaptureConfig()
    bursts = [
        [s.image for s in render_burst("ktp", seed, [0.0] * config.burst, shake_px=1.0)]
        for seed in range(captures + 2)
    ]
    totals, pipelines, encodes, uploads, bare = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        accounts = await prepare(Path(tmp) / "server", port)
        async with (
            loket_server(Path(tmp) / "server", port) as base,
            bare_server(Path(tmp) / "bare") as bare_base,
            httpx.AsyncClient(base_url=base, timeout=30) as http,
            httpx.AsyncClient(base_url=bare_base, timeout=30) as bare_http,
            live_session(port, accounts, http) as (token, claim_id),
        ):
            done = asyncio.Event()

            async def send(message: Envelope) -> None:
                if isinstance(message, CaptureStatus) and message.stage in ("done", "failed"):
                    if message.stage == "failed":
                        raise RuntimeError(f"capture failed: {message.detail}")
                    done.set()

            async def upload(item: OutboxItem, data: bytes) -> Delivery:
                # The one-shot POST (a picture of a chunk or less goes so; larger ones in
                # chunks: bench/upload_resume_bench.py).
                answer = await http.post(
                    f"/api/claims/{item.claim_id}/documents", params={"kind": item.kind},
                    content=data, headers={"Authorization": f"Bearer {token}",
                    "Content-Type": "image/jpeg", "Idempotency-Key": item.idempotency_key},
                )  # fmt: skip
                return Delivery(answer.status_code, answer.json())

            ring = FrameRing(capacity=config.burst, max_age=3600)
            agent = CaptureAgent(
                RingCamera(ring, settle_s=0.0),
                Outbox(Path(tmp) / "outbox"),
                upload,
                send,
                config=config,
            )
            for index, frames in enumerate(bursts):
                for frame in frames:
                    ring.push(frame)
                done.clear()
                request = RequestCapture(session_id="s" * 32, capture_id=f"c{index}", kind="ktp")
                began = time.perf_counter()
                await agent.handle(request, claim_id)
                total = (time.perf_counter() - began) * 1000
                assert done.is_set()
                result = agent.last_result
                assert result is not None and result.accepted and result.jpeg is not None
                bare_began = time.perf_counter()
                await bare_http.post("/upload", content=result.jpeg)
                bare_ms = (time.perf_counter() - bare_began) * 1000
                if index < 2:
                    continue  # warm-up
                t = result.timings
                totals.append(total)
                pipelines.append(t.pipeline_ms)
                encodes.append(t.encode_ms + t.hash_ms)
                uploads.append(total - t.total_ms)
                bare.append(bare_ms)
    print(
        json.dumps(
            {
                "captures": len(totals),
                "frame": "1920x1080",
                "total_ms": percentiles(totals),
                "pipeline_ms": percentiles(pipelines),
                "encode_hash_ms": percentiles(encodes),
                "outbox_and_upload_ms": percentiles(uploads),
                "bare_durable_post_ms": percentiles(bare),
                "ratio_upload_to_bare_p50": round(
                    percentiles(uploads)["p50"] / percentiles(bare)["p50"], 2
                ),
                "goal": "total p95 <= 250 ms",
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captures", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.captures))
