"""server/domain/csv_cells.py: any text round-trips through Python's csv reader as text a
spreadsheet will not run."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from server.domain.csv_cells import FORMULA_STARTS, SpreadsheetCsv, original_text, safe_cell

cells = st.one_of(
    st.text(),
    st.builds(
        lambda quotes, head, tail: quotes + head + tail,
        st.sampled_from(["", "'", "''"]),
        st.sampled_from(FORMULA_STARTS),
        st.text(),
    ),
)


@given(st.lists(cells, min_size=1, max_size=4), st.sampled_from(["\r\n", "\n"]))
def test_every_cell_reads_back_as_quoted_text_and_the_original_is_recoverable(
    values: list[str], terminator: str
) -> None:
    names = [f"c{i}" for i in range(len(values))]
    out = io.StringIO(newline="")
    writer = SpreadsheetCsv(out, names, lineterminator=terminator)
    writer.writeheader()
    writer.writerow(dict(zip(names, values, strict=True)))
    header, row = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert header == names
    for written, value in zip(row, values, strict=True):
        assert not written.startswith(FORMULA_STARTS)  # never a formula
        assert original_text(written) == value
    # Every field is quoted (OWASP); the header is our own names, as before.
    assert out.getvalue().startswith(",".join(names) + terminator)
    assert out.getvalue().split(terminator, 1)[1].startswith('"')


def test_only_text_changes() -> None:
    assert safe_cell("=1+1") == "'=1+1"
    assert safe_cell("-") == "'-"
    assert safe_cell("a=1") == "a=1"
    assert safe_cell("'=1") == "''=1"  # so that original_text inverts it exactly
    assert safe_cell("'a") == "'a"
    assert safe_cell(-5) == -5 and safe_cell(None) is None
