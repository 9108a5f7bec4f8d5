"""Recordings on a real server (issue 23): a booth in a live session opens its session's
recording, sends segments (resumable, in any order, each once), closes it; the manifest's
hash lands in the audit chain; `loket recording verify` names a changed, a dropped and two
reordered segments; only the claim's branch supervisors and auditors play and export it,
audited; a legal hold keeps a claim's recording through a purge; refusals are audited."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from server.domain.recording import manifest_bytes, manifest_sha256
from signaling.messages import EndSession, SessionEnded
from tests.support.accounts import booth_token, user_token
from tests.support.claims import seed_claim
from tests.support.live_server import LiveServer, running_server, server_settings
from tests.support.recordings import BoothRecorder, consent_json, webm_segment
from tests.support.sessions import LivePair, live_pair

ROOT = Path(__file__).resolve().parents[2]
SEGMENTS = [(1, 0.0, 2.0), (2, 2.0, 4.0), (3, 4.0, 5.6)]


@pytest.fixture(scope="module")
def segments() -> list[bytes]:
    return [webm_segment(a, b) for _, a, b in SEGMENTS]


async def _recorded(
    server: LiveServer, http: httpx.AsyncClient, booking: str, booth: str, data: list[bytes]
) -> tuple[LivePair, BoothRecorder]:
    """A live session whose recording is opened, sent (3 before 2, 2 in small chunks) and
    closed."""
    await seed_claim(server, booking)
    pair = await live_pair(server, booking, booth=booth, cso="siti")
    rec = BoothRecorder(http, pair.booth_token)
    opened = await rec.open(pair.assigned.session_id, pair.claim_id)
    assert opened.status_code == 201, opened.text
    for index in (0, 2, 1):
        seq, start, end = SEGMENTS[index]
        res = await rec.segment(
            seq, data[index], start, end, chunk=2048, marks=[{"at_s": start + 0.5, "kind": "focus"}]
        )
        assert res.status_code == 201, res.text
    closed = await rec.close([(s, d) for (s, _, _), d in zip(SEGMENTS, data, strict=True)], 5.6)
    assert closed.status_code == 200, closed.text
    return pair, rec


def _settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    return server_settings(tmp_path, upload_chunk_min_bytes=1024)  # segments in 2 KB chunks


def verify_cli(server: LiveServer, session_id: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOKET_")}
    env.update(
        LOKET_DATA_DIR=str(server.settings.data_dir),
        LOKET_LOG_LEVEL="WARNING",
        LOKET_JWT_SECRET=server.settings.jwt_secret.get_secret_value(),
    )  # type: ignore[union-attr]
    out = subprocess.run(
        [sys.executable, "-m", "server.cli", "recording", "verify", session_id, "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out.returncode, json.loads(out.stdout)


async def test_a_recording_is_stored_closed_anchored_and_tampering_is_named(
    tmp_path: Path, segments: list[bytes]
) -> None:
    async with (
        running_server(_settings(tmp_path)) as server,
        httpx.AsyncClient(base_url=server.base_url) as http,
    ):
        pair, rec = await _recorded(server, http, "REC-0001", "booth-1", segments)
        session = pair.assigned.session_id
        # A retry of a stored segment is answered as stored; another under its number is refused.
        again = await rec.segment(1, segments[0], 0.0, 2.0)
        assert again.status_code == 200 and again.json()["stored"] is True
        other = await rec.segment(1, segments[1], 0.0, 2.0)
        assert other.status_code in (200, 409)  # closed: refused before the bytes, or conflict
        service = server.app.state.recordings.service
        stored = await service.resolve(session)
        manifest = stored.manifest
        assert [s["seq"] for s in manifest["segments"]] == [1, 2, 3]
        assert manifest["marks"][0]["kind"] == "focus" and manifest["gaps"] == []
        assert manifest["officer"]["id"] == "siti" and manifest["claim_id"] == pair.claim_id
        # The manifest's hash is in the audit chain, in the closing entry.
        entries = [e async for e in server.app.state.records.store.audit_entries()]
        closing = [e for e in entries if e.action == "recording.closed"]
        assert [e.evidence for e in closing] == [(manifest_sha256(manifest),)]
        assert {"recording.consent_given", "recording.started"} <= {e.action for e in entries}
        code, report = verify_cli(server, session)
        assert code == 0 and report["ok"], report

        files = server.settings.data_dir / "recordings" / stored.recording_id
        one, two, three = (files / f"{n:06d}.seg" for n in (1, 2, 3))
        # One changed byte of segment 2.
        original = two.read_bytes()
        two.write_bytes(original[:100] + bytes([original[100] ^ 1]) + original[101:])
        code, report = verify_cli(server, session)
        assert code == 3
        assert [(p["seq"], p["fault"]) for p in report["segment_problems"]] == [(2, "changed")]
        two.write_bytes(original)
        # Segment 3 dropped.
        kept = three.read_bytes()
        three.unlink()
        code, report = verify_cli(server, session)
        assert [(p["seq"], p["fault"]) for p in report["segment_problems"]] == [(3, "missing")]
        three.write_bytes(kept)
        # Segments 1 and 2 swapped.
        a, b = one.read_bytes(), two.read_bytes()
        one.write_bytes(b)
        two.write_bytes(a)
        code, report = verify_cli(server, session)
        faults = [(p["seq"], p["fault"]) for p in report["segment_problems"]]
        assert faults == [(1, "reordered"), (2, "reordered")], report
        assert "segment 1 holds the bytes of segment 2" in report["segment_problems"][0]["message"]
        one.write_bytes(a)
        two.write_bytes(b)
        code, report = verify_cli(server, session)
        assert code == 0, report
        await pair.close()


async def test_playback_and_export_are_for_the_branch_supervisors_and_auditors_audited(
    tmp_path: Path, segments: list[bytes]
) -> None:
    async with (
        running_server(_settings(tmp_path)) as server,
        httpx.AsyncClient(base_url=server.base_url) as http,
    ):
        pair, rec = await _recorded(server, http, "REC-0002", "booth-2", segments)
        rid = rec.recording_id
        tokens = {
            "cso_elsewhere": await user_token(
                server, "rina", role="cso", branch="bdg01", pools=frozenset({"bdg01"})
            ),
            "supervisor_elsewhere": await user_token(
                server, "dedi", role="supervisor", branch="bdg01", pools=frozenset()
            ),
            "supervisor": await user_token(server, "budi", role="supervisor", pools=frozenset()),
            "auditor": await user_token(server, "audrey", role="auditor"),
        }

        def auth(name: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[name]}"}

        for name in ("cso_elsewhere", "supervisor_elsewhere"):
            for path in (f"/api/recordings/{rid}", f"/api/recordings/{rid}/export"):
                res = await http.get(path, headers=auth(name))
                assert res.status_code == 403, (name, path, res.text)
            listed = await http.get("/api/recordings", headers=auth(name))
            assert listed.status_code == 403 or listed.json()["recordings"] == []
        # The branch's supervisor finds it and plays it; NIK search is refused.
        found = await http.get(
            "/api/recordings", params={"claim_id": pair.claim_id}, headers=auth("supervisor")
        )
        assert [r["recording_id"] for r in found.json()["recordings"]] == [rid]
        assert "*" in found.json()["recordings"][0]["nik"]  # masked for a supervisor
        nik = (await server.app.state.records.store.get_claim(pair.claim_id)).nik
        assert (
            await http.get("/api/recordings", params={"nik": nik}, headers=auth("supervisor"))
        ).status_code == 403
        by_nik = await http.get("/api/recordings", params={"nik": nik}, headers=auth("auditor"))
        assert by_nik.json()["recordings"][0]["nik"] == nik
        played = (await http.get(f"/api/recordings/{rid}", headers=auth("auditor"))).json()
        first = played["segments"][0]
        assert (await http.get(first["url"], headers=auth("auditor"))).content == segments[0]
        # A segment without the playback's link is refused (every playback is audited).
        bare = await http.get(f"/api/recordings/{rid}/segments/1", headers=auth("auditor"))
        assert bare.status_code == 403 and bare.json()["error"]["code"] == "playback_required"
        export = await http.get(f"/api/recordings/{rid}/export", headers=auth("auditor"))
        assert export.status_code == 200
        with zipfile.ZipFile(io.BytesIO(export.content)) as z:
            names = set(z.namelist())
            assert {
                "manifest.json",
                "SHA256SUMS",
                "chain-entry.json",
                "timeline.json",
                "README.txt",
                "segment-000001.webm",
            } <= names
            manifest = json.loads(z.read("manifest.json"))
            assert z.read("manifest.json") == manifest_bytes(manifest)
            entry = json.loads(z.read("chain-entry.json"))
            assert entry["evidence"] == [manifest_sha256(manifest)]
            assert z.read("segment-000002.webm") == segments[1]
        entries = [e async for e in server.app.state.records.store.audit_entries()]
        reads = [(e.actor, e.action) for e in entries if e.action.startswith("recording")]
        assert ("audrey", "recording.played") in reads and ("audrey", "recording.exported") in reads
        # Refused reads leave nothing to audit; a search is audited with what it found.
        assert not [r for r in reads if r[0] in ("rina", "dedi") and r[1] != "recordings.searched"]
        await pair.close()


async def test_a_legal_hold_keeps_its_recording_through_a_purge(
    tmp_path: Path, segments: list[bytes]
) -> None:
    async with (
        running_server(_settings(tmp_path)) as server,
        httpx.AsyncClient(base_url=server.base_url) as http,
    ):
        held_pair, held = await _recorded(server, http, "REC-0003", "booth-3", segments)
        gone_pair, gone = await _recorded(server, http, "REC-0004", "booth-4", segments)
        operator = {
            "Authorization": f"Bearer {await user_token(server, 'ops', role='operator')}",
            "Idempotency-Key": "hold-1",
        }
        res = await http.post(
            f"/api/claims/{held_pair.claim_id}/legal-hold",
            json={"reason": "case 17/2026"},
            headers=operator,
        )
        assert res.status_code == 201, res.text
        service = server.app.state.recordings.service
        report = await service.purge(0)
        assert report.held == [held.recording_id] and report.purged == [gone.recording_id]
        root = server.settings.data_dir / "recordings"
        assert (root / str(held.recording_id)).is_dir()
        assert not (root / str(gone.recording_id)).exists()
        purged = await service.resolve(gone_pair.assigned.session_id)
        assert purged.state == "purged" and purged.manifest_sha256 is not None
        report = (await service.verify(purged)).to_json()
        assert report["ok"] and "retention" in report["notes"][0]
        assert (await service.verify(await service.resolve(held.recording_id))).ok
        entries = [e async for e in server.app.state.records.store.audit_entries()]
        assert [e.claim_id for e in entries if e.action == "recording.purged"] == [
            gone_pair.claim_id
        ]
        assert any(e.action == "legal_hold.placed" for e in entries)
        await held_pair.close()
        await gone_pair.close()


async def test_refusals_are_audited_and_an_unrecorded_session_takes_no_media(
    tmp_path: Path, segments: list[bytes]
) -> None:
    async with (
        running_server(_settings(tmp_path)) as server,
        httpx.AsyncClient(base_url=server.base_url) as http,
    ):
        claim = await seed_claim(server, "REC-0005")
        booth = BoothRecorder(http, await booth_token(server, "booth-5"))
        body = {
            "claim": {"kind": "booking", "booking_code": "REC-0005"},
            "consent": consent_json("refused"),
        }
        res = await http.post("/api/recording-consents", json=body, headers=booth.headers())
        assert res.status_code == 201 and res.json()["refusal"] == "in_person", res.text
        entries = [e async for e in server.app.state.records.store.audit_entries()]
        refusal = [e for e in entries if e.action == "recording.consent_refused"]
        assert [(e.claim_id, e.decision) for e in refusal] == [(claim.claim_id, "refused")]
        # Under the `unrecorded` policy a refusing participant's session goes on, unrecorded.
        await seed_claim(server, "REC-0006")
        pair = await live_pair(server, "REC-0006", booth="booth-6", cso="siti")
        rec = BoothRecorder(http, pair.booth_token)
        opened = await rec.open(pair.assigned.session_id, pair.claim_id, answer="refused")
        assert opened.status_code == 201 and opened.json()["state"] == "refused"
        assert "grant" not in opened.json()
        res = await rec.segment(1, segments[0], 0.0, 2.0)
        assert res.status_code == 409, res.text
        assert not (server.settings.data_dir / "recordings" / str(rec.recording_id)).exists()
        await pair.close()


async def test_the_grant_lets_the_kiosk_finish_after_the_session_ended(
    tmp_path: Path, segments: list[bytes]
) -> None:
    async with (
        running_server(_settings(tmp_path)) as server,
        httpx.AsyncClient(base_url=server.base_url) as http,
    ):
        await seed_claim(server, "REC-0007")
        pair = await live_pair(server, "REC-0007", booth="booth-7", cso="siti")
        rec = BoothRecorder(http, pair.booth_token)
        assert (await rec.open(pair.assigned.session_id, pair.claim_id)).status_code == 201
        assert (await rec.segment(1, segments[0], 0.0, 2.0)).status_code == 201
        await pair.cso.send(EndSession(session_id=pair.assigned.session_id))
        await pair.booth.expect(SessionEnded)
        await asyncio.sleep(0.2)
        grant, rec.grant = rec.grant, None
        refused = await rec.segment(2, segments[1], 2.0, 4.0)
        assert refused.status_code == 403, refused.text
        rec.grant = grant
        assert (await rec.segment(2, segments[1], 2.0, 4.0)).status_code == 201
        closed = await rec.close([(1, segments[0]), (2, segments[1])], 4.0)
        assert closed.status_code == 200, closed.text
        await pair.close()


async def test_a_recording_past_its_byte_budget_is_refused_before_its_bytes(
    tmp_path: Path, segments: list[bytes]
) -> None:
    """One kiosk cannot make the server keep more than LOKET_MAX_RECORDING_BYTES for one
    recording: the segment that would pass it is refused (413) when it is declared, and
    nothing of it is staged or stored."""
    budget = len(segments[0]) + len(segments[1]) + len(segments[2]) - 1
    settings = server_settings(tmp_path, upload_chunk_min_bytes=1024)
    # model_copy: below the setting's floor (1 MiB), which these small segments need.
    settings = settings.model_copy(update={"max_recording_bytes": budget})
    async with (
        running_server(settings) as server,
        httpx.AsyncClient(base_url=server.base_url) as http,
    ):
        service = server.app.state.recordings.service
        await seed_claim(server, "REC-BUDGET")
        pair = await live_pair(server, "REC-BUDGET", booth="booth-1", cso="siti")
        rec = BoothRecorder(http, pair.booth_token)
        opened = await rec.open(pair.assigned.session_id, pair.claim_id)
        assert opened.status_code == 201, opened.text
        for index in (0, 1):
            seq, start, end = SEGMENTS[index]
            assert (await rec.segment(seq, segments[index], start, end)).status_code == 201
        seq, start, end = SEGMENTS[2]
        refused = await rec.segment(seq, segments[2], start, end)
        assert refused.status_code == 413, refused.text
        assert refused.json()["error"]["code"] == "recording_too_large"
        stored = await service.store.segments(opened.json()["recording_id"])
        assert sorted(stored) == [1, 2]
