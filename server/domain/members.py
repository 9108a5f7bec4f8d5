"""The member record a claim carries: who the membership data says the participant is.

Pure rules: no I/O, no clock (callers pass the day). A record comes from the operator's
import, from the agency's membership directory, or, when the directory had no answer, from
what the participant typed at the booth (NIK, KPJ and claim type only: every other field
unknown, and the record says it was not confirmed by the directory).

Two rules about the record itself:

- The NIK's digits 7-12 are the birth date (DDMMYY), with 40 added to the day for women
  (Dukcapil's NIK layout, as `claims.validate_nik` reads it): a record whose birth date or
  sex disagrees with its own NIK is inconsistent and cannot back an approval.
- Waiting periods (`EMPLOYMENT_END_WAIT_MONTHS`): a resignation claim is paid once a month
  has passed since the employment ended. Source: Permenaker No. 4 Tahun 2022 (tata cara dan
  persyaratan pembayaran manfaat JHT), which keeps the "masa tunggu 1 (satu) bulan" of
  Permenaker No. 19 Tahun 2015 for participants who resign. Quoted from the regulation as
  published; no copy was available offline here, so check the current text with the
  agency's legal team before relying on it (and add PHK's own waiting period the same way
  if the agency applies one).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from enum import StrEnum

from server.domain.claims import ClaimRuleError
from signaling.messages import ClaimType


class MemberSource(StrEnum):
    IMPORT = "import"  # `loket claims import` with the member columns
    DIRECTORY = "directory"  # the MemberDirectory port answered (local table or HTTP)
    WALK_IN_TYPED = "walk_in_typed"  # only what the participant typed: not confirmed


# The record's fields in the order screens and files list them. Names are the CSV columns.
MEMBER_FIELDS: tuple[str, ...] = (
    "full_name", "birth_place", "birth_date", "sex", "address", "employer_name",
    "employment_end", "bank_name", "account_number", "account_holder",
)  # fmt: skip
OPTIONAL_FIELDS = frozenset({"address"})
REQUIRED_FIELDS: tuple[str, ...] = tuple(f for f in MEMBER_FIELDS if f not in OPTIONAL_FIELDS)

LABELS: Mapping[str, str] = {
    "full_name": "Full name", "birth_place": "Birth place", "birth_date": "Birth date",
    "sex": "Sex", "address": "Address", "employer_name": "Employer",
    "employment_end": "Employment end", "bank_name": "Bank", "account_number": "Account number",
    "account_holder": "Account holder",
}  # fmt: skip

# The agency's dates (employment ends, waiting periods) are Western Indonesian Time's.
WIB = timezone(timedelta(hours=7), "WIB")

# Months that must pass after the employment ended before the claim is paid (see above).
EMPLOYMENT_END_WAIT_MONTHS: Mapping[ClaimType, int] = {ClaimType.RESIGNATION: 1}

_TEXT_LIMITS = {"full_name": 128, "birth_place": 64, "address": 256, "employer_name": 128,
                "bank_name": 64, "account_holder": 128}  # fmt: skip
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]+")
_ACCOUNT = re.compile(r"[0-9]{5,20}")
_SEX = {"M": "M", "L": "M", "LAKI-LAKI": "M", "F": "F", "P": "F", "PEREMPUAN": "F"}


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """What the membership data says. Fields are None when unknown (a typed walk-in)."""

    source: MemberSource
    recorded_at: datetime
    full_name: str | None = None
    birth_place: str | None = None
    birth_date: date | None = None
    sex: str | None = None  # "M" or "F"
    address: str | None = None
    employer_name: str | None = None
    employment_end: date | None = None
    bank_name: str | None = None
    account_number: str | None = None  # digits only
    account_holder: str | None = None
    # Said to the officer: e.g. "not confirmed by the directory: no answer within 3 s".
    note: str | None = None

    def __post_init__(self) -> None:
        if self.recorded_at.tzinfo is None:
            raise ValueError("recorded_at must be timezone-aware")
        if self.sex not in (None, "M", "F"):
            raise ValueError("sex is M or F")
        if self.source is not MemberSource.WALK_IN_TYPED and self.missing():
            raise ValueError(f"a {self.source} record needs {', '.join(self.missing())}")

    def __repr__(self) -> str:  # names and accounts stay out of logs and tracebacks
        return f"MemberRecord(source={self.source.value!r}, complete={not self.missing()!r})"

    def missing(self) -> tuple[str, ...]:
        """Required fields this record does not know."""
        return tuple(f for f in REQUIRED_FIELDS if getattr(self, f) is None)

    @property
    def confirmed(self) -> bool:
        """Known from the import or the directory, not only typed at the booth."""
        return self.source is not MemberSource.WALK_IN_TYPED

    def values(self) -> dict[str, str | None]:
        """Each field as text (dates ISO), for views, comparison and storage."""
        out: dict[str, str | None] = {}
        for name in MEMBER_FIELDS:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, date) else value
        return out


def typed_walk_in(now: datetime, note: str) -> MemberRecord:
    """The record of a walk-in the directory did not confirm: nothing but the typed
    NIK and KPJ (on the claim itself), and why."""
    return MemberRecord(MemberSource.WALK_IN_TYPED, now, note=note)


# --- reading a record from text (an import row, a directory answer) ---------------------------


def _bad(column: str, problem: str) -> ClaimRuleError:
    return ClaimRuleError("invalid_member", f"{column}: {problem}")


def _text(column: str, value: str) -> str:
    text = " ".join(value.split())
    if not text:
        raise _bad(column, "is empty")
    if len(text) > _TEXT_LIMITS[column] or not _PRINTABLE.fullmatch(text):
        raise _bad(column, f"must be printable text of at most {_TEXT_LIMITS[column]} characters")
    return text


def _date(column: str, value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise _bad(column, f"{value.strip()!r} is not a date; write it YYYY-MM-DD") from None


def _sex(value: str) -> str:
    code = _SEX.get(value.strip().upper())
    if code is None:
        raise _bad("sex", f"{value.strip()!r} is not M or F (L/P and LAKI-LAKI/PEREMPUAN too)")
    return code


def _account(value: str) -> str:
    digits = re.sub(r"[\s.\-]", "", value)
    if not _ACCOUNT.fullmatch(digits):
        raise _bad("account_number", "must be 5-20 digits (spaces, dots and dashes are dropped)")
    return digits


def parse_member(
    values: Mapping[str, str | None],
    *,
    source: MemberSource,
    recorded_at: datetime,
    nik: str,
    today: date,
) -> MemberRecord:
    """A complete record from text fields (CSV cells, JSON strings), checked: every
    required field present and well formed, dates not in the future, the birth date and
    sex agreeing with the NIK. ClaimRuleError("invalid_member" | "nik_birth_mismatch")
    names the column and what to fix."""
    parsed: dict[str, object] = {}
    for name in MEMBER_FIELDS:
        raw = values.get(name)
        if raw is None or not str(raw).strip():
            if name in OPTIONAL_FIELDS:
                continue
            raise _bad(name, "is missing")
        text = str(raw)
        if name in ("birth_date", "employment_end"):
            when = _date(name, text)
            if when > today:
                raise _bad(name, f"{when.isoformat()} is in the future")
            parsed[name] = when
        elif name == "sex":
            parsed[name] = _sex(text)
        elif name == "account_number":
            parsed[name] = _account(text)
        else:
            parsed[name] = _text(name, text)
    record = MemberRecord(source, recorded_at, **parsed)  # type: ignore[arg-type]
    check_nik_birth(nik, record)
    return record


def has_member_values(values: Mapping[str, str | None]) -> bool:
    """Whether a row carries any member field (a file without them imports claims only)."""
    return any(values.get(name) not in (None, "") for name in MEMBER_FIELDS)


def with_source(record: MemberRecord, source: MemberSource, at: datetime) -> MemberRecord:
    return replace(record, source=source, recorded_at=at)


# --- the rules --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NikBirth:
    """The birth date and sex a NIK's digits 7-12 say (DDMMYY, day + 40 for women)."""

    day: int
    month: int
    year2: int  # the NIK holds no century
    sex: str


def nik_birth(nik: str) -> NikBirth:
    """What a (structurally valid) NIK says of its holder's birth."""
    day, month, year2 = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    return NikBirth(day - 40 if day > 40 else day, month, year2, "F" if day > 40 else "M")


def nik_birth_problem(nik: str, born: date, sex: str) -> str | None:
    """None when the NIK's digits 7-12 agree with the birth date and sex, else what differs."""
    said = nik_birth(nik)
    problems = []
    if (said.day, said.month, said.year2) != (born.day, born.month, born.year % 100):
        problems.append(
            f"its birth digits say {said.day:02d}-{said.month:02d}-..{said.year2:02d}, "
            f"the record {born:%d-%m-%Y}"
        )
    if said.sex != sex:
        written = "a woman (40 added to the day)" if said.sex == "F" else "a man"
        problems.append(f"it is written for {written}, the record says {sex}")
    return "; ".join(problems) or None


def check_nik_birth(nik: str, record: MemberRecord) -> None:
    """Raise ClaimRuleError("nik_birth_mismatch") when the record's birth date or sex
    disagrees with the NIK (records that do not know them pass)."""
    if record.birth_date is None or record.sex is None:
        return
    problem = nik_birth_problem(nik, record.birth_date, record.sex)
    if problem is not None:
        raise ClaimRuleError(
            "nik_birth_mismatch",
            f"The NIK does not agree with the birth date and sex: {problem}. "
            "Correct the record (or the NIK) at its source.",
        )


def local_day(at: datetime) -> date:
    """The agency's calendar day at `at`."""
    return at.astimezone(WIB).date()


def add_months(day: date, months: int) -> date:
    """The same day `months` later, or the month's last day when it has no such day."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def payable_from(claim_type: ClaimType, employment_end: date | None) -> date | None:
    """The first day a claim of this type may be paid, given when the employment ended
    (None: no waiting period applies, or the end is not known)."""
    months = EMPLOYMENT_END_WAIT_MONTHS.get(claim_type)
    if months is None or employment_end is None:
        return None
    return add_months(employment_end, months)


def waiting_period_problem(
    claim_type: ClaimType, employment_end: date | None, on: date
) -> str | None:
    """Why a claim cannot be paid on `on` yet (its waiting period), or None."""
    first = payable_from(claim_type, employment_end)
    if first is None or on >= first or employment_end is None:
        return None
    months = EMPLOYMENT_END_WAIT_MONTHS[claim_type]
    return (
        f"the employment ended on {employment_end.isoformat()}: a {claim_type} claim is paid "
        f"{months} month{'s' if months > 1 else ''} after that, from {first.isoformat()}"
    )
