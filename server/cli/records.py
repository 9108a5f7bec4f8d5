"""`loket claims ...`, `loket outcomes ...`, `loket audit ...`, `loket retention ...`.

The operator side of the records: bulk-import booked claims, export decided outcomes,
check the audit chain, purge document files past retention. Heavy modules (SQL, the
records service) are imported inside the functions so that `loket booth` starts fast.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from server.cli.common import DATA_DIR_OPTION, fail, load_settings, run_database_job
from server.domain.privacy import mask_niks_in
from server.settings import Settings

if TYPE_CHECKING:
    from server.ports.records import DocumentRecord, OutcomeFilter
    from server.records import ImportResult, ImportRow, PurgeReport, RecordsService

T = TypeVar("T")
console = Console()
err_console = Console(stderr=True)

claims_app = typer.Typer(
    no_args_is_help=True, help="Claims booked elsewhere: import them before the participants come."
)
outcomes_app = typer.Typer(no_args_is_help=True, help="Decided outcomes: export for reporting.")
audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit log.")
retention_app = typer.Typer(
    no_args_is_help=True, help="Retention: delete document files kept longer than allowed."
)

IMPORT_COLUMNS = (
    "booking_code",
    "nik",
    "kpj",
    "claim_type",
    "branch",
    "appointment",
    "balance_idr",
)
# The booth checks in with a booking code of this shape (signaling.messages.BookingCode):
# a claim imported under any other code could never be checked in.
_BOOKING_CODE = re.compile(r"[A-Z0-9-]{4,32}")
PAGE = 1000
EXIT_SOME_FAILED = 2


class FileFormat(StrEnum):
    CSV = "csv"
    JSON = "json"


_fail = fail


def _with_records(settings: Settings, work: Callable[[RecordsService], Awaitable[T]]) -> T:
    """Run `work` against the records service, bringing an embedded database up to date."""
    from server.adapters.sql.wiring import open_records

    async def job() -> T:
        async with open_records(settings) as (_, service):
            return await work(service)

    try:
        return run_database_job(settings, job)
    except ValueError as exc:  # e.g. a malformed LOKET_DOCUMENTS_KEY
        raise _fail(str(exc)) from None


# --- loket claims import ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    line: int  # as a person finds it: CSV line in the file, or 1-based JSON index
    row: ImportRow


def _format_of(file: Path, given: FileFormat | None) -> FileFormat:
    if given is not None:
        return given
    suffix = file.suffix.lower().lstrip(".")
    try:
        return FileFormat(suffix)
    except ValueError:
        raise _fail(
            f"cannot tell the format of {file.name} from its extension; "
            "add --format csv or --format json"
        ) from None


def _missing_columns(present: set[str]) -> str | None:
    missing = [c for c in IMPORT_COLUMNS if c not in present]
    if missing:
        return f"missing column(s) {', '.join(missing)}; the columns are {','.join(IMPORT_COLUMNS)}"
    from server.domain.members import MEMBER_FIELDS, REQUIRED_FIELDS

    given = [c for c in MEMBER_FIELDS if c in present]
    lacking = [c for c in REQUIRED_FIELDS if c not in present]
    if given and lacking:  # some member columns but not all: surely a mistake
        return (
            f"member column(s) {', '.join(lacking)} missing; with a member record the "
            f"columns are {','.join(MEMBER_FIELDS)} (address may be empty)"
        )
    return None


def _member_cells(values: dict[str, str]) -> dict[str, str]:
    from server.domain.members import MEMBER_FIELDS

    return {c: values[c] for c in MEMBER_FIELDS if c in values}


def _read_csv(text: str, name: str) -> list[_Row]:
    from server.records import ImportRow

    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[_Row] = []
    previous_end = 0
    for record in reader:
        start, previous_end = previous_end + 1, reader.line_num
        if not record or all(not cell.strip() for cell in record):
            continue  # blank lines are not rows
        if header is None:
            header = [cell.strip().lower() for cell in record]
            problem = _missing_columns(set(header))
            if problem:
                raise _fail(f"{name} line {start}: {problem}")
            continue
        values = dict(zip(header, record, strict=False))
        cells = {c: values.get(c, "") for c in IMPORT_COLUMNS}
        rows.append(_Row(start, ImportRow(**cells, member=_member_cells(values))))
    if header is None:
        raise _fail(f"{name} is empty; its first line must be {','.join(IMPORT_COLUMNS)}")
    return rows


def _json_cell(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _read_json(text: str, name: str) -> list[_Row]:
    from server.records import ImportRow

    data = json.loads(text)
    if not isinstance(data, list):
        raise _fail(f"{name} must hold a JSON list of objects, one per claim")
    rows = []
    for index, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise _fail(f"{name} item {index} is not an object; each claim is {{...}}")
        problem = _missing_columns(set(item))
        if problem:
            raise _fail(f"{name} item {index}: {problem}")
        cells = {c: _json_cell(item[c]) for c in IMPORT_COLUMNS}
        member = _member_cells({k: _json_cell(v) for k, v in item.items()})
        rows.append(_Row(index, ImportRow(**cells, member=member)))
    return rows


def _read_import(file: Path, fmt: FileFormat) -> list[_Row]:
    """Every row of the file, or exit 1 before anything is imported."""
    try:
        text = file.read_text(encoding="utf-8-sig")  # -sig: spreadsheets like to add a BOM
    except UnicodeDecodeError:
        raise _fail(f"{file} is not UTF-8 text; save it as UTF-8 (CSV UTF-8) and retry") from None
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        if fmt is FileFormat.CSV:
            return _read_csv(text, file.name)
        return _read_json(text, file.name)
    except csv.Error as exc:
        raise _fail(f"{file.name} is not valid CSV ({exc}); fix the file and retry") from None
    except json.JSONDecodeError as exc:
        raise _fail(
            f"{file.name} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "fix the file and retry"
        ) from None


def _precheck(row: ImportRow) -> str | None:
    code = row.booking_code.strip()
    if not _BOOKING_CODE.fullmatch(code):
        return (
            f"booking code {code!r} must be 4-32 capital letters, digits or dashes "
            "(the booth checks in with it)"
        )
    return None


@claims_app.command(
    "import",
    help=(
        "Import booked claims from a CSV or JSON file. CSV header: "
        "booking_code,nik,kpj,claim_type,branch,appointment,balance_idr; JSON: a list of "
        "objects with those keys. claim_type is resignation, termination, retirement, "
        "disability or death; appointment is ISO 8601 with a time zone, e.g. "
        "2026-12-01T09:00:00+07:00. Optional member record columns (all of them, or none): "
        "full_name,birth_place,birth_date,sex,address,employer_name,employment_end,"
        "bank_name,account_number,account_holder (dates YYYY-MM-DD, sex M/F, address may be "
        "empty); they also fill the membership table walk-ins are looked up in. "
        "Each row stands alone: a bad row is reported and the "
        "others are still imported. Exit codes: 0 every row imported, 2 some rows failed "
        "(fix those rows and import the file again: rows already imported are reported as "
        "existing), 1 the file could not be used and nothing was imported."
    ),
)
def claims_import(
    file: Path = typer.Argument(..., help="The CSV or JSON file to import."),
    fmt: FileFormat | None = typer.Option(
        None, "--format", help="csv or json (default: from the file's extension)."
    ),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from server.records import ImportResult

    settings = load_settings(data_dir)
    rows = _read_import(file, _format_of(file, fmt))
    if not rows:
        typer.echo(f"nothing to import: {file.name} has no data rows")
        return

    results: dict[int, ImportResult] = {}
    accepted: list[_Row] = []
    for item in rows:
        problem = _precheck(item.row)
        if problem is None:
            accepted.append(item)
        else:
            results[item.line] = ImportResult(item.line, False, error=problem)

    progress = Progress(
        TextColumn("importing {task.description}"), BarColumn(), MofNCompleteColumn(),
        console=err_console, transient=True,
    )  # fmt: skip
    with progress:
        task = progress.add_task(file.name, total=len(rows))
        progress.advance(task, len(rows) - len(accepted))

        async def work(service: RecordsService) -> list[ImportResult]:
            return await service.import_claims(
                None, [item.row for item in accepted], lambda: progress.advance(task)
            )

        imported = _with_records(settings, work)
    for item, result in zip(accepted, imported, strict=True):
        results[item.line] = ImportResult(item.line, result.ok, result.claim_id, result.error)

    by_line = {item.line: item.row for item in rows}
    failed = [results[line] for line in sorted(results) if not results[line].ok]
    typer.echo(f"imported {len(rows) - len(failed)}, failed {len(failed)}")
    if failed:
        table = Table("line", "booking code", "error", title=f"rows not imported from {file.name}")
        for result in failed:
            table.add_row(
                str(result.line),
                mask_niks_in(by_line[result.line].booking_code.strip()),
                mask_niks_in(result.error or "unknown error"),
            )
        console.print(table)
        typer.echo("fix these rows and import the file again (imported rows are kept)")
        raise typer.Exit(EXIT_SOME_FAILED)


# --- loket outcomes export --------------------------------------------------------------------


def _parse_when(value: str | None, option: str, *, end_of_day: bool) -> datetime | None:
    """YYYY-MM-DD (UTC, whole day) or an ISO 8601 date-time; always returned in UTC."""
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        pass
    else:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return start + timedelta(days=1) if end_of_day else start
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(
            f"{option} {value!r} is not a date; use YYYY-MM-DD or e.g. 2026-01-31T17:00+07:00"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    """stdout, or a temp file beside `path` renamed over it only once it is complete."""
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    directory = path.resolve().parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise _fail(f"cannot write in {directory}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


async def _write_export(
    service: RecordsService, where: OutcomeFilter, fmt: FileFormat, out: IO[str], full_nik: bool
) -> int:
    import dataclasses

    from server.domain.csv_cells import SpreadsheetCsv
    from server.record_views import EXPORT_FIELDS, export_rows

    writer = SpreadsheetCsv(out, EXPORT_FIELDS, lineterminator="\n")
    if fmt is FileFormat.CSV:
        writer.writeheader()
    else:
        out.write("[")
    count, offset = 0, 0
    while True:
        page = await service.store.list_outcomes(dataclasses.replace(where, offset=offset))
        for row in await export_rows(service.store, page, full_nik=full_nik):
            if fmt is FileFormat.CSV:
                writer.writerow(row)
            else:
                out.write(("\n  " if count == 0 else ",\n  ") + json.dumps(row, ensure_ascii=False))
            count += 1
        if len(page) < where.limit:
            break
        offset += len(page)
    if fmt is FileFormat.JSON:
        out.write("\n]\n" if count else "]\n")
    return count


@outcomes_app.command(
    "export",
    help=(
        "Export decided outcomes, joined with their claims, as CSV (with a header) or a JSON "
        "list. Writes to stdout (only the data) unless --output is given. NIKs are masked "
        "(last four digits shown) unless --full-nik."
    ),
)
def outcomes_export(
    fmt: FileFormat = typer.Option(FileFormat.CSV, "--format", help="csv or json."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write to this file (atomically) instead of stdout."
    ),
    branch: str | None = typer.Option(None, help="Only this branch, e.g. jkt01."),
    cso: str | None = typer.Option(None, help="Only outcomes decided by this CSO (username)."),
    decision: str | None = typer.Option(
        None, help="Only this decision, e.g. approved, rejected, needs_follow_up."
    ),
    since: str | None = typer.Option(
        None, help="Decided on or after DATE: YYYY-MM-DD (UTC) or ISO 8601 with an offset."
    ),
    until: str | None = typer.Option(
        None,
        help="Decided before DATE; a plain YYYY-MM-DD (UTC) includes that whole day.",
    ),
    full_nik: bool = typer.Option(
        False,
        "--full-nik",
        help="Show whole NIKs. For auditors only: the export is recorded in the audit log.",
    ),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    from server.ports.records import AuditDraft, OutcomeFilter

    settings = load_settings(data_dir)
    start = _parse_when(since, "--since", end_of_day=False)
    end = _parse_when(until, "--until", end_of_day=True)
    if start and end and start >= end:
        raise _fail("--since must be before --until")
    if output is not None and (output.is_dir() or not output.resolve().parent.is_dir()):
        raise _fail(f"cannot write {output}: give a file in an existing directory")
    where = OutcomeFilter(
        branch=branch, decided_by=cso, decision=decision, since=start, until=end, limit=PAGE
    )

    async def work(service: RecordsService) -> int:
        # Every export hands out personal data (KPJ numbers, booking codes; with
        # --full-nik whole NIKs): each one is recorded, before a file is put in place.
        filters = {"branch": branch, "cso": cso, "decision": decision,
                   "since": start.isoformat() if start else None,
                   "until": end.isoformat() if end else None}  # fmt: skip
        with _output(output) as out:
            count = await _write_export(service, where, fmt, out, full_nik)
            exported = AuditDraft(
                actor="cli", role="operator", action="outcomes.exported",
                details={"format": str(fmt), "rows": count, "full_nik": full_nik,
                         "filters": filters},
            )  # fmt: skip
            now = datetime.now(UTC)
            await service.store.write(lambda tx: tx.append_audit(exported, now))
        return count

    count = _with_records(settings, work)
    if output is not None:
        typer.echo(f"exported {count} outcome(s) to {output}")
    else:
        typer.echo(f"exported {count} outcome(s)", err=True)


# --- loket audit verify -----------------------------------------------------------------------


@audit_app.command(
    "verify",
    help=(
        "Check the whole audit hash chain: every entry unchanged, none missing, none added "
        "at the end or removed from it. Exit 0 if intact, 1 with each problem otherwise."
    ),
)
def audit_verify(data_dir: Path | None = DATA_DIR_OPTION) -> None:
    settings = load_settings(data_dir)
    count, problems = _with_records(settings, lambda service: service.verify_audit())
    if not problems:
        typer.echo(f"audit log intact: {count} entries")
        return
    for problem in problems:
        typer.echo(f"entry {problem.seq}: {problem.kind}: {problem.message}")
    raise _fail(
        f"{len(problems)} problem(s) in the audit log ({count} entries read): the log was "
        "altered outside Loket; restore it from a backup and investigate who had write "
        "access to the database"
    )


# --- loket retention purge --------------------------------------------------------------------


@retention_app.command(
    "purge",
    help=(
        "Delete the files of documents uploaded more than DAYS days ago. The document "
        "records and the audit log keep each file's SHA-256 hash, so outcomes stay "
        "verifiable; a file that a document not purged (of any claim) still uses is kept. "
        "Recordings past LOKET_RECORDING_RETENTION_DAYS go too. Claims on legal hold "
        "(`loket recording hold`) keep both. "
        "Asks first unless --yes."
    ),
)
def retention_purge(
    older_than: int | None = typer.Option(
        None,
        "--older-than",
        min=1,
        metavar="DAYS",
        help="Age in days (at least 1; default: LOKET_RETENTION_DAYS).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List the documents that would be purged; change nothing."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    recordings_older_than: int | None = typer.Option(
        None,
        "--recordings-older-than",
        min=0,
        metavar="DAYS",
        help="Recordings' age in days (default: LOKET_RECORDING_RETENTION_DAYS).",
    ),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    settings = load_settings(data_dir)
    days = older_than if older_than is not None else settings.retention_days
    cutoff = datetime.now(UTC) - timedelta(days=days)

    async def due(service: RecordsService) -> list[DocumentRecord]:
        return await service.store.documents_older_than(cutoff)

    held = _held_claims(settings)  # legal holds (loket recording hold): never purged
    candidates = [d for d in _with_records(settings, due) if d.claim_id not in held]
    if not candidates:
        typer.echo(f"nothing to purge: no document files older than {days} days")
        _purge_recordings(settings, recordings_older_than, dry_run, yes)
        return
    if dry_run:
        table = Table(
            "document", "claim", "kind", "uploaded at", "sha256",
            title=f"would purge {len(candidates)} document(s) older than {days} days",
        )  # fmt: skip
        for doc in candidates:
            table.add_row(
                doc.document_id, doc.claim_id, doc.kind,
                doc.uploaded_at.isoformat(timespec="seconds"), doc.sha256[:16] + "…",
            )  # fmt: skip
        console.print(table)
        typer.echo("dry run: nothing was deleted")
        return
    if not yes:
        typer.confirm(
            f"Delete the files of {len(candidates)} document(s) uploaded before "
            f"{cutoff.date().isoformat()}? This cannot be undone",
            abort=True,
        )

    async def purge(service: RecordsService) -> PurgeReport:
        return await service.purge(days, keep_claims=held)

    report = _with_records(settings, purge)
    kept = (
        f", kept {len(report.kept)} file(s) that newer documents still use" if report.kept else ""
    )
    typer.echo(
        f"purged {len(report.purged)} document(s) older than {days} days: deleted "
        f"{len(report.deleted)} file(s){kept}; the document records and the audit log keep "
        "their SHA-256 hashes"
    )
    _purge_recordings(settings, recordings_older_than, dry_run, yes)


def _held_claims(settings: Settings) -> frozenset[str]:
    from server.cli.recording import open_recordings

    async def job() -> frozenset[str]:
        async with open_recordings(settings) as service:
            return await service.store.held_claims()

    return run_database_job(settings, job)


def _purge_recordings(settings: Settings, days: int | None, dry_run: bool, yes: bool) -> None:
    """Recordings past their own retention (LOKET_RECORDING_RETENTION_DAYS), holds kept."""
    from server.cli.recording import confirm_and_purge_recordings

    days = days if days is not None else settings.recording_retention_days
    if dry_run:
        typer.echo(f"dry run: recordings older than {days} days would be purged too")
        return
    confirm_and_purge_recordings(settings, days, yes)
