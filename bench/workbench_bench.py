"""Machine advice as wired: a document stored -> its reading in the officer's console, and a
face still stored -> its comparison there, against the bare reading and comparison of the
same pictures in this process.

A `loket serve` process (one reading worker process, one face thread: the defaults) with a
booked claim whose member record is the synthetic participant's; a booth and an officer
in its live session over real sockets. For each picture, one at a time: the bare call here
(`reading.document.read_bytes` with a warm engine, one onnxruntime thread; or
`faces.FaceAnalyser` compare), then the booth uploads it and the clock runs until the
officer's socket gets `verification_updated` and `GET /api/claims/{id}/verification` has
answered with the advice (what the console does). The two alternate, so load from other
work falls on both alike.

The pictures are the synthetic kiosk's: the member's own KTP on a desk (a different desk,
light and placement each time) through the capture pipeline, and the face camera's still.
The ratio is refused unless the wired reading gave exactly the bare reading's fields for
every picture and the wired comparison the bare band (the same work).

    uv run --frozen python bench/workbench_bench.py [--pictures 6] [--warmup 1]

Prints one JSON line: reading and face, each {"wired_s": {p50, p95}, "bare_s": {...},
"ratio_p50", "bare_cpu_s": the bare call's CPU time (one thread: what sizes the cores,
whatever the load)}, and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import websockets
from common import call_session, free_port, loket_server

from booth_client.capture import CapturePipeline, encode_jpeg
from booth_client.capture_agent import SyntheticDocumentCamera
from booth_client.sources.documents import ParticipantDocuments, face_frame
from booth_client.sources.id_cards import person_for
from server.ports.records import RecordsTx
from signaling.codec import decode_outbound, encode
from signaling.messages import (
    ClaimType,
    Ping,
    Pong,
    Role,
    VerificationUpdated,
)

ROOT = Path(__file__).resolve().parents[1]
PORTRAIT = ROOT / "tests" / "support" / "faces_photos" / "hopper.jpg"
NIK, KPJ = "3171015208900001", "12345678901"
BOOKING = "BENCH-ADVICE-1"


async def pictures(count: int) -> tuple[list[bytes], list[bytes]]:
    """`count` KTP captures (a new desk each) and face stills (new sensor noise each)."""
    portrait = cv2.imread(str(PORTRAIT))
    documents = ParticipantDocuments(lambda: (NIK, KPJ), portrait)
    ktps = []
    for seed in range(count):
        frames = await SyntheticDocumentCamera(seed, documents=documents).burst("ktp", 5, 1)
        result = CapturePipeline().run(frames, "ktp")
        assert result.jpeg is not None
        ktps.append(result.jpeg)
    stills = [encode_jpeg(face_frame(portrait, (1280, 720), n), 92) for n in range(count)]
    return ktps, stills


async def prepare(data_dir: Path, port: int):  # type: ignore[no-untyped-def]
    from server.adapters.sql.wiring import open_records
    from server.auth.demo import DEMO_BRANCH, ensure_demo_accounts
    from server.domain.claims import new_booked_claim
    from server.domain.members import MemberRecord, MemberSource
    from server.settings import Settings

    settings = Settings(data_dir=data_dir, port=port)
    accounts = await ensure_demo_accounts(settings, booths=1)
    p, now = person_for(NIK, KPJ), datetime.now(UTC)
    claim = new_booked_claim(uuid.uuid4().hex, BOOKING, NIK, KPJ, ClaimType.RETIREMENT,
                             DEMO_BRANCH, now + timedelta(hours=1), now)  # fmt: skip
    member = MemberRecord(
        MemberSource.IMPORT, now, full_name=p.name, birth_place=p.birth_place,
        birth_date=p.birth_date, sex=p.sex, employer_name="PT MAJU JAYA",
        employment_end=date(2026, 1, 31), bank_name=p.bank, account_number=p.account_number,
        account_holder=p.name,
    )  # fmt: skip

    def add(tx: RecordsTx) -> None:
        tx.add_claim(claim)
        tx.set_claim_member(claim.claim_id, member)

    async with open_records(settings) as (_, service):
        await service.store.write(add)
    return accounts


class Officer:
    """The officer's socket: notes when each `verification_updated` arrives."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.told: dict[tuple[str, str], float] = {}
        self.news = asyncio.Event()

    async def listen(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                msg = decode_outbound(raw, Role.CSO)
                if isinstance(msg, Ping):
                    await self.ws.send(encode(Pong()))
                elif isinstance(msg, VerificationUpdated):
                    self.told[(msg.document_id, msg.what)] = time.perf_counter()
                    self.news.set()

    async def until(self, document_id: str, what: str, within: float = 180.0) -> float:
        async with asyncio.timeout(within):
            while (document_id, what) not in self.told:
                self.news.clear()
                await self.news.wait()
        return self.told[(document_id, what)]


async def session(port: int, accounts, http: httpx.AsyncClient):  # type: ignore[no-untyped-def]
    booth_auth = await http.post("/api/auth/booth",
                                 json={"credential": accounts.booths[0].credential})  # fmt: skip
    cso_auth = await http.post(
        "/api/auth/login",
        json={"username": accounts.cso.username, "password": accounts.cso.password},
    )
    booth_token, cso_token = booth_auth.json()["access_token"], cso_auth.json()["access_token"]
    booth, cso, claim_id = await call_session(port, booth_token, cso_token, BOOKING)
    return booth, booth_token, cso, cso_token, claim_id


def seconds(values: list[float]) -> dict[str, float]:
    p95 = (
        statistics.quantiles(values, n=20, method="inclusive")[18] if len(values) > 1 else values[0]
    )
    return {"p50": round(statistics.median(values), 2), "p95": round(p95, 2)}


async def main(count: int, warmup: int) -> None:
    from faces.analysis import FaceAnalyser, compare
    from reading.document import read_bytes
    from reading.engine import OcrEngine
    from server.analysis import decode_bgr  # as the server decodes them

    ktps, stills = await pictures(count + warmup)
    engine, analyser = OcrEngine(1), FaceAnalyser(threads=1)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        accounts = await prepare(Path(tmp), port)
        env = {"LOKET_READING_WORKERS": "1", "LOKET_FACE_WORKERS": "1",
               "LOKET_READING_TIMEOUT": "120"}  # fmt: skip
        async with (
            loket_server(Path(tmp), port, **env) as base,
            httpx.AsyncClient(base_url=base, timeout=60) as http,
        ):
            booth, booth_token, cso, cso_token, claim_id = await session(port, accounts, http)
            officer = Officer(cso)
            listening = [asyncio.create_task(officer.listen()),
                         asyncio.create_task(_drain(booth))]  # fmt: skip
            results: dict[str, dict[str, list[float]]] = {
                "reading": {"wired": [], "bare": [], "cpu": []},
                "face": {"wired": [], "bare": [], "cpu": []},
            }
            same = True

            async def wired(kind: str, data: bytes, what: str) -> tuple[float, dict[str, Any]]:
                began = time.perf_counter()
                res = await http.post(
                    f"/api/claims/{claim_id}/documents", params={"kind": kind}, content=data,
                    headers={"Authorization": f"Bearer {booth_token}",
                             "Content-Type": "image/jpeg", "Idempotency-Key": uuid.uuid4().hex},
                )  # fmt: skip
                res.raise_for_status()
                document_id = res.json()["document_id"]  # a still carries its comparison
                await officer.until(document_id, what)
                as_officer = {"Authorization": f"Bearer {cso_token}"}
                url = f"/api/claims/{claim_id}/verification"
                bench = (await http.get(url, headers=as_officer)).json()
                return time.perf_counter() - began, {"bench": bench, "document_id": document_id}

            for i, (ktp, still) in enumerate(zip(ktps, stills, strict=True)):
                began, cpu = time.perf_counter(), time.process_time()
                bare = read_bytes("ktp", ktp, engine)
                bare_s, cpu_s = time.perf_counter() - began, time.process_time() - cpu
                took, got = await wired("ktp", ktp, "reading")
                doc = next(
                    d for d in got["bench"]["documents"] if d["document_id"] == got["document_id"]
                )
                wired_values = {
                    f["field"]: f["read"] for f in doc["fields"] if f["field"] != "photo"
                }
                same &= doc["reading"]["status"] == "done" and wired_values == bare.values()
                if i >= warmup:
                    results["reading"]["bare"].append(bare_s)
                    results["reading"]["cpu"].append(cpu_s)
                    results["reading"]["wired"].append(took)
                live = decode_bgr(still)
                card = decode_bgr(ktp)
                began, cpu = time.perf_counter(), time.process_time()
                expected = compare(analyser.analyse(live), analyser.analyse_document(card))
                bare_s, cpu_s = time.perf_counter() - began, time.process_time() - cpu
                took, got = await wired("face_still", still, "face")
                same &= got["bench"]["face"].get("band") == (
                    expected.band.value if expected.band else None
                )
                if i >= warmup:
                    results["face"]["bare"].append(bare_s)
                    results["face"]["cpu"].append(cpu_s)
                    results["face"]["wired"].append(took)
            for task in listening:
                task.cancel()
            await booth.close()
            await cso.close()
    out: dict[str, Any] = {
        "pictures": count,
        "load": round(os.getloadavg()[0], 1),
        "same_work": same,
    }
    for what, runs in results.items():
        through, alone = seconds(runs["wired"]), seconds(runs["bare"])
        ratio = round(through["p50"] / alone["p50"], 2) if same else None  # the same work only
        out[what] = {"wired_s": through, "bare_s": alone, "ratio_p50": ratio,
                     "bare_cpu_s": seconds(runs["cpu"])}  # fmt: skip
    print(json.dumps(out))


async def _drain(ws: Any) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for raw in ws:
            if isinstance(decode_outbound(raw, Role.BOOTH), Ping):
                await ws.send(encode(Pong()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.pictures, args.warmup))
