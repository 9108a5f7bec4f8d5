"""`loket recording ...`: verify and export recorded sessions, legal holds, retention.

    loket recording verify SESSION_ID            every segment vs the manifest vs the chain
    loket recording export SESSION_ID --out F.zip
    loket recording hold CLAIM_ID --reason TEXT   (and release, holds)
    loket recording purge [--older-than DAYS]     recordings past retention, holds kept

Heavy modules are imported inside the commands so that `loket booth` starts fast.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer

from server.cli.common import DATA_DIR_OPTION, fail, load_settings, run_database_job
from server.principal import AccountRole, Principal
from server.settings import Settings

if TYPE_CHECKING:
    from server.recordings import RecordingsService

T = TypeVar("T")
recording_app = typer.Typer(
    no_args_is_help=True,
    help="Recorded sessions: verify, export, legal holds, retention.",
)
# The shell is trusted like the database it opens: an auditor's reach, an operator's holds.
AUDITOR = Principal("cli", AccountRole.AUDITOR, "loket CLI", "")
OPERATOR = Principal("cli", AccountRole.OPERATOR, "loket CLI", "")
EXIT_FAILED = 3  # verify found a problem


@asynccontextmanager
async def open_recordings(settings: Settings) -> AsyncIterator[RecordingsService]:
    """The recordings service without a live floor (CLI, batch jobs). Closed on exit."""
    from server.adapters.recording_files import SegmentFiles
    from server.adapters.sql.recordings import SqlRecordingStore
    from server.adapters.sql.wiring import open_records
    from server.recordings import RecordingsService
    from server.records import documents_key

    async with open_records(settings) as (engine, records):
        store = SqlRecordingStore(engine)
        files = SegmentFiles(settings.data_dir / "recordings", documents_key(settings))
        try:
            yield RecordingsService(settings, store, files, records)
        finally:
            await store.close()


def _with(settings: Settings, work: Callable[[RecordingsService], Awaitable[T]]) -> T:
    from server.records import RecordsError

    async def job() -> T:
        async with open_recordings(settings) as service:
            return await work(service)

    try:
        return run_database_job(settings, job)
    except RecordsError as exc:
        raise fail(exc.message) from None
    except ValueError as exc:  # a malformed LOKET_DOCUMENTS_KEY
        raise fail(str(exc)) from None


@recording_app.command(
    "verify",
    help=(
        "Check a recording end to end: every segment against its manifest (a changed byte, "
        "a dropped or a reordered segment is named), the manifest against the audit entry "
        "that anchored its SHA-256, and the audit chain up to that entry. Exit 0 when "
        "intact, 3 when not."
    ),
)
def verify(
    session: str = typer.Argument(..., metavar="SESSION_ID", help="or the recording's id"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of lines."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    settings = load_settings(data_dir)

    async def work(service: RecordingsService) -> dict[str, object]:
        return (await service.verify(await service.resolve(session))).to_json()

    report = _with(settings, work)
    if as_json:
        typer.echo(json.dumps(report))
    else:
        head = f"recording {report['recording_id']} (session {report['session_id']})"
        typer.echo(f"{head}: {report['state']}, {report['segments']} segment(s)")
        for note in report["notes"]:  # type: ignore[attr-defined]
            typer.echo(f"  note: {note}")
        for problem in report["problems"]:  # type: ignore[attr-defined]
            typer.secho(f"  FAIL {problem}", fg="red")
        for problem in report["segment_problems"]:  # type: ignore[attr-defined]
            typer.secho(
                f"  FAIL segment {problem['seq']}: {problem['fault']}: {problem['message']}",
                fg="red",
            )
        if report["ok"]:
            typer.echo(
                f"  OK: manifest {report['manifest_sha256']} is anchored by audit entry "
                f"{report['chain_seq']}; every segment matches it"
            )
    if not report["ok"]:
        raise typer.Exit(EXIT_FAILED)


@recording_app.command(
    "export",
    help=(
        "Write a closed recording as a zip: its segments, manifest, SHA256SUMS, timeline, "
        "the audit entry anchoring the manifest and a README on verifying it without Loket. "
        "Audited as an export by the CLI."
    ),
)
def export(
    session: str = typer.Argument(..., metavar="SESSION_ID", help="or the recording's id"),
    out: Path = typer.Option(..., "--out", "-o", help="The zip file to write."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    settings = load_settings(data_dir)

    async def work(service: RecordingsService) -> tuple[bytes, str]:
        rec = await service.resolve(session)
        return await service.export(AUDITOR, rec), rec.recording_id

    data, recording_id = _with(settings, work)
    out.write_bytes(data)
    typer.echo(f"wrote {out} ({len(data):,} bytes): recording {recording_id}; see README.txt in it")


@recording_app.command("hold", help="Place a legal hold on a claim: purges keep its records.")
def hold(
    claim_id: str = typer.Argument(..., metavar="CLAIM_ID"),
    reason: str = typer.Option(..., "--reason", help="Why (a case number), for the audit log."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    settings = load_settings(data_dir)

    async def work(service: RecordingsService) -> None:
        await service.place_hold(OPERATOR, claim_id, reason)

    _with(settings, work)
    typer.echo(f"claim {claim_id} is on legal hold: retention purges skip it")


@recording_app.command("release", help="Release a claim's legal hold.")
def release(
    claim_id: str = typer.Argument(..., metavar="CLAIM_ID"),
    reason: str = typer.Option(..., "--reason", help="Why, for the audit log."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    settings = load_settings(data_dir)

    async def work(service: RecordingsService) -> bool:
        return await service.release_hold(OPERATOR, claim_id, reason)

    if not _with(settings, work):
        raise fail(f"claim {claim_id} has no legal hold")
    typer.echo(f"claim {claim_id}: legal hold released")


@recording_app.command("holds", help="List the claims on legal hold.")
def holds(data_dir: Path | None = DATA_DIR_OPTION) -> None:
    settings = load_settings(data_dir)

    async def work(service: RecordingsService) -> list[tuple[str, str, str, str]]:
        return [
            (h.claim_id, h.placed_at.isoformat(timespec="seconds"), h.placed_by, h.reason)
            for h in await service.store.holds()
        ]

    rows = _with(settings, work)
    if not rows:
        typer.echo("no claim is on legal hold")
    for row in rows:
        typer.echo("\t".join(row))


@recording_app.command(
    "purge",
    help=(
        "Delete the segments of recordings opened more than DAYS days ago, except those of "
        "claims on legal hold. The manifest, its hash and the audit log remain. "
        "`loket retention purge` does this too, with the documents."
    ),
)
def purge(
    older_than: int | None = typer.Option(
        None,
        "--older-than",
        min=0,
        metavar="DAYS",
        help="Age in days (default: LOKET_RECORDING_RETENTION_DAYS).",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    settings = load_settings(data_dir)
    days = older_than if older_than is not None else settings.recording_retention_days
    confirm_and_purge_recordings(settings, days, yes)


def confirm_and_purge_recordings(settings: Settings, days: int, yes: bool) -> None:
    """Ask (unless `yes`) only when some recording is past `days`, then purge them."""
    due = recordings_due(settings, days)
    if not due:
        typer.echo(f"no recording to purge: none opened more than {days} days ago")
        return
    if not yes:
        typer.confirm(
            f"Delete the segments of {due} recording(s) opened more than {days} days ago "
            "(claims on legal hold are kept)? This cannot be undone",
            abort=True,
        )
    typer.echo(purge_recordings(settings, days))


def recordings_due(settings: Settings, days: int) -> int:
    """How many recordings are past `days` and not purged yet (held ones included)."""
    from datetime import UTC, datetime, timedelta

    cutoff = datetime.now(UTC) - timedelta(days=days)

    async def work(service: RecordingsService) -> int:
        return len(await service.store.older_than(cutoff))

    return _with(settings, work)


def purge_recordings(settings: Settings, days: int) -> str:
    """Purge recordings past `days`; one line saying what was done (and what was held)."""
    from server.recordings import PurgeReport

    async def work(service: RecordingsService) -> PurgeReport:
        return await service.purge(days)

    report = _with(settings, work)
    held = f"; kept {len(report.held)} on legal hold" if report.held else ""
    return (
        f"purged {len(report.purged)} recording(s) older than {days} days ({report.files} "
        f"segment file(s)){held}; their manifests and the audit log keep the hashes"
    )
