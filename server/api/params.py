"""Parameter types the REST routers share, each bounded: what /openapi.json states about
them is what validation enforces (tests/integration/test_api_bounds.py walks the schema).

Text parameters refuse control characters: PostgreSQL cannot store or compare a NUL, and
no id, name or filter of ours contains one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

# Printable text: no C0 control character, no DEL.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"
# Free text people type (notes): line breaks and tabs are fine, other controls are not.
NOTE_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
# Record ids: `new_id()` is 32 hex digits; imported and test ids stay within this.
ID_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
# A page of outcomes may start anywhere a region's records could reach, and no further:
# larger numbers overflow SQLite's 64-bit integers.
MAX_OFFSET = 1_000_000_000

ClaimId = Annotated[str, Path(min_length=1, max_length=32, pattern=ID_PATTERN)]
DocumentId = Annotated[str, Path(min_length=1, max_length=32, pattern=ID_PATTERN)]
# server/adapters/staging.py: upload_id_for() is 32 hex digits.
UploadId = Annotated[str, Path(min_length=32, max_length=32, pattern=r"^[0-9a-f]{32}$")]

TIMESTAMP_MAX_LENGTH = 40  # 2026-12-01T09:00:00.123456+07:00 is 32
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)  # any offset still converts to UTC


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > TIMESTAMP_MAX_LENGTH:
        raise ValueError(f"a time is at most {TIMESTAMP_MAX_LENGTH} characters")
    return value


def _aware_and_in_range(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("give the time with its offset, e.g. 2026-12-01T09:00:00+07:00 or ...Z")
    if not EARLIEST <= value < LATEST:
        raise ValueError("the time must be between 1970 and 9999 (UTC)")
    return value


Timestamp = Annotated[
    datetime,
    BeforeValidator(_short),
    AfterValidator(_aware_and_in_range),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "maxLength": TIMESTAMP_MAX_LENGTH,
            "description": "ISO 8601 with an offset, from 1970 to 9999 (UTC)",
        }
    ),
]


DATE_MAX_LENGTH = 10  # YYYY-MM-DD


def _short_date(value: Any) -> Any:
    if isinstance(value, str) and len(value) > DATE_MAX_LENGTH:
        raise ValueError("give a date as YYYY-MM-DD")
    return value


LocalDate = Annotated[
    date,
    BeforeValidator(_short_date),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date",
            "maxLength": DATE_MAX_LENGTH,
            "description": "a local date, YYYY-MM-DD",
        }
    ),
]
