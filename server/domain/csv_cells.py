"""CSV for people who open it in a spreadsheet: no cell can become a formula.

Excel, LibreOffice and Google Sheets run a cell that starts with `=`, `+`, `-` or `@` as a
formula (a tab or carriage return first hides the same thing), so a participant's or an
officer's free text could call out to the network or a shell when a supervisor opens an
export ("CSV injection", OWASP). OWASP's remedy: prefix such a cell with a single quote,
which spreadsheets show as text, and quote every field. A program that reads the file back
gets the original with `original_text`: text that already starts with quotes before such a
character gets one more, so the rule inverts exactly.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """`value`, or text that a spreadsheet shows as text. Only text is changed: numbers
    and None are written as they are."""
    if isinstance(value, str) and value.lstrip("'").startswith(FORMULA_STARTS):
        return "'" + value
    return value


def original_text(cell: str) -> str:
    """What `safe_cell` was given, from what it wrote."""
    if cell.startswith("'") and cell.lstrip("'").startswith(FORMULA_STARTS):
        return cell[1:]
    return cell


class SpreadsheetCsv:
    """A `csv.DictWriter` whose every cell is `safe_cell` and every field quoted. The
    header (our own field names) is written as before, unquoted."""

    def __init__(
        self, out: IO[str], fieldnames: Sequence[str], *, lineterminator: str = "\r\n"
    ) -> None:
        self._fieldnames = list(fieldnames)
        self._header = csv.writer(out, lineterminator=lineterminator)
        self._writer = csv.DictWriter(
            out, fieldnames=fieldnames, quoting=csv.QUOTE_ALL, lineterminator=lineterminator
        )

    def writeheader(self) -> None:
        self._header.writerow(self._fieldnames)

    def writerow(self, row: Mapping[str, Any]) -> None:
        self._writer.writerow({k: safe_cell(v) for k, v in row.items()})

    def writerows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.writerow(row)
