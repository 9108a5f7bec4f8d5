"""Durable outcome writes per second: Loket's SQL record store vs a bare driver loop.

One writer, sequential commits. Through Loket, each outcome is what the outcome commit
does in the store: `store.idempotent(...)` (one transaction: the stored-response look-up,
then the work) running `get_claim(for_update)`, `documents_of`, `append_audit` (hash chain:
head row locked, entry hashed, audit row inserted, head row updated), `add_outcome`,
`set_claim_state` and the idempotency row. Claims are pre-created and not timed.

The baseline runs the statements the store issues (in one transaction: idempotency
look-up, claim select, documents select, head select, audit and outcome inserts, head and
claim updates, idempotency insert; one COMMIT per outcome) with the bare driver on a
database with the same schema (made by the same migrations), in the same process:

- SQLite: `sqlite3` on a fresh file, `PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL`
  (and foreign_keys=ON, BEGIN IMMEDIATE, as Loket's engine does).
- PostgreSQL (`--postgres`, on by default when /usr/lib/postgresql/15/bin/initdb exists):
  a throw-away cluster started as the tests do (fsync=on); Loket's store on one fresh
  database, a bare `asyncpg` loop on another.

Loket and bare alternate in rounds so that drift in disk speed hits both alike.

    uv run python bench/outcome_write_bench.py [--outcomes 500] [--warmup 50] [--no-postgres]

Prints one JSON line: {"sqlite": {"loket_per_s", "bare_per_s", "ratio"}, "postgresql":
{...} or null, "target"}; target ratio >= 0.5.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.adapters.sql import migrate  # noqa: E402
from server.adapters.sql.engine import make_engine  # noqa: E402
from server.adapters.sql.records import SqlRecordStore, SqlRecordsTx  # noqa: E402
from server.domain.claims import ClaimState, new_booked_claim  # noqa: E402
from server.ports.records import AuditDraft, OutcomeRecord, RecordsTx  # noqa: E402
from server.settings import Settings  # noqa: E402
from signaling.messages import ClaimType  # noqa: E402

PG_INITDB = Path("/usr/lib/postgresql/15/bin/initdb")
ROUNDS = 5
CSO = "demo-cso"
PRINTS = ("sha-256 " + ":".join(["AB"] * 32), "sha-256 " + ":".join(["CD"] * 32))
EVIDENCE = (hashlib.sha256(b"ktp").hexdigest(),)
REASONS = ("all_documents_valid",)
NOTE = "documents checked at the booth"


def claim_ids(n: int) -> list[str]:
    return [uuid.uuid4().hex for _ in range(n)]


def nik(i: int) -> str:
    return f"3171014501{90 + i % 10:02d}{1 + i % 9999:04d}"


def now() -> datetime:
    return datetime.now(UTC)


def details(session_id: str) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "booth_id": "demo-booth-1",
        "cso_fingerprints": [PRINTS[0]],
        "booth_fingerprints": [PRINTS[1]],
    }


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- Loket: the SQL record store ---------------------------------------------------------


class LoketWriter:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings)
        self.store = SqlRecordStore(self.engine)

    async def seed(self, ids: list[str]) -> None:
        at = now()

        def add_claims(tx: SqlRecordsTx) -> None:
            for i, claim_id in enumerate(ids):
                claim = new_booked_claim(
                    claim_id, f"BK-{claim_id[:12]}", nik(i), f"{i:011d}",
                    ClaimType.RESIGNATION, "demo01", at, at,
                )  # fmt: skip
                tx.add_claim(claim)
                tx.set_claim_state(claim_id, ClaimState.IN_VERIFICATION)

        await self.store.write(add_claims)  # type: ignore[arg-type]

    async def outcome(self, claim_id: str) -> None:
        session_id = uuid.uuid4().hex

        def work(tx: RecordsTx) -> tuple[int, dict[str, Any]]:
            claim = tx.get_claim(claim_id, for_update=True)
            assert claim is not None
            tx.documents_of(claim_id)
            at = now()
            entry = tx.append_audit(
                AuditDraft(actor=CSO, role="cso", action="outcome.recorded", claim_id=claim_id,
                           decision="approved", reason_codes=REASONS, evidence=EVIDENCE,
                           fingerprints=PRINTS, details=details(session_id)),
                at,
            )  # fmt: skip
            outcome = OutcomeRecord(
                outcome_id=uuid.uuid4().hex, claim_id=claim_id, decision="approved",
                reason_codes=REASONS, note=NOTE, decided_by=CSO, branch=claim.branch,
                session_id=session_id, fingerprints=PRINTS, evidence=EVIDENCE, decided_at=at,
                audit_seq=entry.seq,
            )  # fmt: skip
            tx.add_outcome(outcome)
            tx.set_claim_state(claim_id, ClaimState.APPROVED)
            return 201, {"outcome_id": outcome.outcome_id, "claim_id": claim_id}

        digest = hashlib.sha256(f"outcome{claim_id}".encode()).hexdigest()
        response = await self.store.idempotent(CSO, uuid.uuid4().hex, digest, work)
        assert response.status_code == 201 and not response.replayed

    async def close(self) -> None:
        await self.engine.dispose()


async def loket_writer(settings: Settings, ids: list[str]) -> LoketWriter:
    await migrate.upgrade(settings)
    writer = LoketWriter(settings)
    await writer.seed(ids)
    return writer


# --- baselines: the same statements through the bare drivers ---------------------------

SEED_SQL = (
    "INSERT INTO claims (claim_id, booking_code, kpj, nik, branch, claim_type, appointment,"
    " balance_idr, state, walk_in, created_at, updated_at)"
    " VALUES ({}, {}, {}, {}, 'demo01', 'resignation', {}, 0, 'in_verification', false, {}, {})"
)


def audit_row(seq: int, prev_hash: str, claim_id: str, session_id: str) -> tuple[Any, ...]:
    at = now().isoformat(timespec="microseconds")
    body = {
        "seq": seq, "at": at, "actor": CSO, "role": "cso", "action": "outcome.recorded",
        "claim_id": claim_id, "decision": "approved", "reason_codes": list(REASONS),
        "evidence": list(EVIDENCE), "fingerprints": list(PRINTS),
        "details": details(session_id), "prev_hash": prev_hash,
    }  # fmt: skip
    digest = hashlib.sha256(canonical(body).encode()).hexdigest()
    return (
        seq, at, CSO, "cso", "outcome.recorded", claim_id, "approved", canonical(list(REASONS)),
        canonical(list(EVIDENCE)), canonical(list(PRINTS)), canonical(details(session_id)),
        prev_hash, digest,
    )  # fmt: skip


def outcome_row(claim_id: str, session_id: str, seq: int, at: Any) -> tuple[Any, ...]:
    return (
        uuid.uuid4().hex, claim_id, "approved", canonical(list(REASONS)), NOTE, CSO, "demo01",
        session_id, canonical(list(PRINTS)), canonical(list(EVIDENCE)), at, seq,
    )  # fmt: skip


class BareSqlite:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")

    def seed(self, ids: list[str]) -> None:
        at = now().isoformat()
        sql = SEED_SQL.format(*["?"] * 7)
        self.db.execute("BEGIN")
        for i, claim_id in enumerate(ids):
            self.db.execute(sql, (claim_id, f"BK-{claim_id[:12]}", f"{i:011d}", nik(i), at, at, at))
        self.db.execute("COMMIT")

    async def outcome(self, claim_id: str) -> None:
        db, session_id, key = self.db, uuid.uuid4().hex, uuid.uuid4().hex
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "SELECT * FROM idempotency_keys WHERE principal = ? AND key = ?", (CSO, key)
        ).fetchall()
        claim = db.execute("SELECT * FROM claims WHERE claim_id = ?", (claim_id,)).fetchone()
        assert claim is not None
        db.execute("SELECT * FROM documents WHERE claim_id = ?", (claim_id,)).fetchall()
        seq, prev = db.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        row = audit_row(seq + 1, prev, claim_id, session_id)
        db.execute(f"INSERT INTO audit_log VALUES ({','.join('?' * 13)})", row)
        db.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (row[0], row[-1]))
        at = now().isoformat()
        db.execute(
            "INSERT INTO outcomes (outcome_id, claim_id, decision, reason_codes, note,"
            " decided_by, branch, session_id, fingerprints, evidence, decided_at, audit_seq)"
            f" VALUES ({','.join('?' * 12)})",
            outcome_row(claim_id, session_id, row[0], at),
        )
        db.execute(
            "UPDATE claims SET state = 'approved', updated_at = ? WHERE claim_id = ?",
            (at, claim_id),
        )
        db.execute(
            "INSERT INTO idempotency_keys (principal, key, request_hash, status_code, response,"
            " created_at) VALUES (?, ?, ?, 201, ?, ?)",
            (CSO, key, hashlib.sha256(claim_id.encode()).hexdigest(),
             canonical({"claim_id": claim_id}), now().isoformat()),
        )  # fmt: skip
        db.execute("COMMIT")

    async def close(self) -> None:
        self.db.close()


class BareAsyncpg:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, sqlalchemy_url: str) -> BareAsyncpg:
        import asyncpg

        return cls(await asyncpg.connect(sqlalchemy_url.replace("+asyncpg", "")))

    async def seed(self, ids: list[str]) -> None:
        at = now()
        sql = SEED_SQL.format(*[f"${i}" for i in range(1, 8)])
        async with self.conn.transaction():
            await self.conn.executemany(
                sql,
                [(c, f"BK-{c[:12]}", f"{i:011d}", nik(i), at, at, at) for i, c in enumerate(ids)],
            )

    async def outcome(self, claim_id: str) -> None:
        conn, session_id, key = self.conn, uuid.uuid4().hex, uuid.uuid4().hex
        async with conn.transaction():
            await conn.fetch(
                "SELECT * FROM idempotency_keys WHERE principal = $1 AND key = $2", CSO, key
            )
            claim = await conn.fetchrow(
                "SELECT * FROM claims WHERE claim_id = $1 FOR UPDATE", claim_id
            )
            assert claim is not None
            await conn.fetch("SELECT * FROM documents WHERE claim_id = $1", claim_id)
            head = await conn.fetchrow("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
            row = audit_row(head["seq"] + 1, head["hash"], claim_id, session_id)
            marks = ",".join(f"${i}" for i in range(1, 14))
            await conn.execute(f"INSERT INTO audit_log VALUES ({marks})", *row)
            await conn.execute(
                "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", row[0], row[-1]
            )
            at = now()
            marks = ",".join(f"${i}" for i in range(1, 13))
            await conn.execute(
                "INSERT INTO outcomes (outcome_id, claim_id, decision, reason_codes, note,"
                " decided_by, branch, session_id, fingerprints, evidence, decided_at, audit_seq)"
                f" VALUES ({marks})",
                *outcome_row(claim_id, session_id, row[0], at),
            )
            await conn.execute(
                "UPDATE claims SET state = 'approved', updated_at = $1 WHERE claim_id = $2",
                at,
                claim_id,
            )
            await conn.execute(
                "INSERT INTO idempotency_keys (principal, key, request_hash, status_code,"
                " response, created_at) VALUES ($1, $2, $3, 201, $4, $5)",
                CSO, key, hashlib.sha256(claim_id.encode()).hexdigest(),
                canonical({"claim_id": claim_id}), now(),
            )  # fmt: skip

    async def close(self) -> None:
        await self.conn.close()


# --- measuring -----------------------------------------------------------------------------

Outcome = Callable[[str], Awaitable[None]]


async def race(
    loket: Outcome, ids_l: list[str], bare: Outcome, ids_b: list[str], n: int, warmup: int
) -> dict[str, float]:
    """Warm both up, then alternate rounds of sequential commits; commits per second."""
    for claim_id in ids_l[:warmup]:
        await loket(claim_id)
    for claim_id in ids_b[:warmup]:
        await bare(claim_id)
    spent = {"loket": 0.0, "bare": 0.0}
    chunk = -(-n // ROUNDS)
    for start in range(warmup, warmup + n, chunk):
        for name, write, ids in (("loket", loket, ids_l), ("bare", bare, ids_b)):
            batch = ids[start : min(start + chunk, warmup + n)]
            began = time.perf_counter()
            for claim_id in batch:
                await write(claim_id)
            spent[name] += time.perf_counter() - began
    loket_rate, bare_rate = n / spent["loket"], n / spent["bare"]
    return {
        "loket_per_s": round(loket_rate, 1),
        "bare_per_s": round(bare_rate, 1),
        "ratio": round(loket_rate / bare_rate, 2),
    }


async def sqlite_bench(n: int, warmup: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        ids_l, ids_b = claim_ids(n + warmup), claim_ids(n + warmup)
        ours = await loket_writer(Settings(data_dir=Path(tmp) / "loket"), ids_l)
        bare_settings = Settings(data_dir=Path(tmp) / "bare")
        await migrate.upgrade(bare_settings)  # the same schema; no Loket code past this
        theirs = BareSqlite(bare_settings.data_dir / "loket.db")
        theirs.seed(ids_b)
        try:
            return await race(ours.outcome, ids_l, theirs.outcome, ids_b, n, warmup)
        finally:
            await ours.close()
            await theirs.close()


async def postgres_bench(n: int, warmup: int) -> dict[str, float]:
    from tests.support.postgres import create_database, postgres_cluster

    with postgres_cluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        ids_l, ids_b = claim_ids(n + warmup), claim_ids(n + warmup)
        loket_url, bare_url = await create_database(cluster), await create_database(cluster)
        ours = await loket_writer(Settings(data_dir=Path(tmp), database_url=loket_url), ids_l)
        await migrate.upgrade(Settings(data_dir=Path(tmp), database_url=bare_url))
        theirs = await BareAsyncpg.open(bare_url)
        await theirs.seed(ids_b)
        try:
            return await race(ours.outcome, ids_l, theirs.outcome, ids_b, n, warmup)
        finally:
            await ours.close()
            await theirs.close()


async def main(n: int, warmup: int, postgres: bool) -> None:
    sqlite_result = await sqlite_bench(n, warmup)
    pg_result = await postgres_bench(n, warmup) if postgres else None
    print(json.dumps({"sqlite": sqlite_result, "postgresql": pg_result, "target": "ratio >= 0.5"}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outcomes", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument(
        "--postgres",
        action=argparse.BooleanOptionalAction,
        default=PG_INITDB.exists(),
        help="also measure PostgreSQL 15 (default: on when its binaries are installed)",
    )
    args = parser.parse_args()
    # The event loop `loket serve` runs on (uvicorn picks uvloop when installed).
    uvloop.run(main(args.outcomes, args.warmup, args.postgres))
