"""The reading's pure parts, without OCR: text as the engine returns it (lines with boxes
and confidences) in, fields out; dates, names, the NIK's own birth date; comparison with
a member record. Examples for each rule, hypothesis for the invariants."""

from __future__ import annotations

import math
import string
from datetime import date

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from reading.compare import NAME_MATCH, Match, compare, sex_code
from reading.dates import MONTHS, nik_birth, parse_date
from reading.document import turn_lines
from reading.engine import TextLine
from reading.fields import Field, is_nik, parse, rows
from reading.names import name_similarity, name_tokens, normalise_name
from reading.text import digit_field, digit_runs, distance, ratio, split_label

# --- text as the engine gives it -------------------------------------------------------------


def line(text: str, x: float, y: float, score: float = 0.98, h: float = 30.0) -> TextLine:
    """A line of `text` whose box starts at (x, y), about 18 px per character wide."""
    w = 18.0 * max(1, len(text))
    return TextLine(text, score, ((x, y), (x + w, y), (x + w, y + h), (x, y + h)))


def ktp_lines(
    nik: str = "3174056708900002",
    name: str = "SITI NURHALIZA",
    birth: str = "JAKARTA, 27-08-1990",
    sex: str = "PEREMPUAN",
    *,
    colon: str = ": ",
    score: float = 0.98,
) -> list[TextLine]:
    """A KTP's rows as the engine returns them: label and value as separate lines."""
    out = [line("PROVINSI DKI JAKARTA", 400, 40), line("JAKARTA SELATAN", 450, 90)]
    table = [("NIK", nik), ("Nama", name), ("Tempat/Tgl Lahir", birth), ("Jenis Kelamin", sex),
             ("Alamat", "JL. MAWAR NO. 12"), ("Agama", "ISLAM")]  # fmt: skip
    for i, (label, value) in enumerate(table):
        y = 180 + 42 * i
        out.append(line(label, 50, y))
        out.append(line(colon + value, 400, y + 2, score))
    out.append(line("Gol. Darah : O", 700, 180 + 42 * 3))
    return out


def values(fields: dict[str, Field]) -> dict[str, str | None]:
    return {k: f.value for k, f in fields.items()}


def test_a_clean_ktp_reads_every_field() -> None:
    fields = parse("ktp", ktp_lines())
    assert values(fields) == {
        "nik": "3174056708900002",
        "name": "SITI NURHALIZA",
        "birth_place": "JAKARTA",
        "birth_date": "1990-08-27",
        "sex": "F",
    }
    assert all(0.9 <= f.confidence <= 1.0 for f in fields.values())


def test_ocr_confusions_in_digit_fields_are_mapped_and_cost_confidence() -> None:
    # O/0, I/1, S/5, B/8 inside the NIK and the date; full-width comma from the recogniser.
    fields = parse("ktp", ktp_lines(nik="3I74O567O8900002", birth="JAKARTA\uff0c27-O8-199O"))
    assert fields["nik"].value == "3174056708900002"
    assert fields["birth_date"].value == "1990-08-27"
    clean = parse("ktp", ktp_lines())
    assert fields["nik"].confidence < clean["nik"].confidence
    assert digit_field("5I8-00l") == ("518001", 2)
    assert digit_field("S1B-0l") is None  # half letters: more likely a word than a number
    assert digit_field("3174 0567 0890 0002") == ("3174056708900002", 0)
    assert digit_field("SITI") is None  # a word is not a number


def test_label_variants_missing_colons_and_merged_lines() -> None:
    merged = [line("NIK 3174056708900002", 50, 100), line("NamaSITI NURHALIZA", 50, 150),
              line("Tempat/Tg1 Lahir JAKARTA,27-08-1990", 50, 200),
              line("Jenis kelamin PEREMPUAN Gol. Darah O", 50, 250)]  # fmt: skip
    assert values(parse("ktp", merged)) == values(parse("ktp", ktp_lines()))
    assert values(parse("ktp", ktp_lines(colon=""))) == values(parse("ktp", ktp_lines()))


def test_unreadable_fields_are_none_not_guesses() -> None:
    # 15 digits, a NIK whose date digits are no date, a birth date on 31 February, a
    # sex word that is neither, and a name of noise: all None.
    fields = parse(
        "ktp",
        ktp_lines(nik="317405670890000", birth="JAKARTA, 31-02-1990", sex="PXRXMXXX", name="~ #"),
    )
    assert values(fields) == {"nik": None, "name": None, "birth_place": "JAKARTA",
                              "birth_date": None, "sex": None}  # fmt: skip
    assert fields["nik"].confidence == 0.0
    assert parse("ktp", ktp_lines(nik="3174059908900002"))["nik"].value is None  # day 99
    assert parse("ktp", [])["nik"] == Field(None, 0.0)


def test_low_confidence_readings_are_none() -> None:
    fields = parse("ktp", ktp_lines(score=0.55))
    assert all(f.value is None for f in fields.values())


def test_someone_elses_number_elsewhere_is_not_taken_when_two_disagree() -> None:
    # No NIK label; two different 16-digit NIKs on the card: which one is a guess.
    lines = [line("3174056708900002", 400, 100), line("3174056708900003", 400, 300)]
    assert parse("ktp", lines)["nik"].value is None
    assert parse("ktp", lines[:1])["nik"].value == "3174056708900002"


def test_kpj_card_labelled_and_unlabelled() -> None:
    labelled = [line("BPJS Ketenagakerjaan", 200, 30), line("Nama", 50, 200),
                line(": AHMAD HIDAYAT", 400, 200), line("No. KPJ", 50, 250),
                line(": 1234567890l", 400, 250), line("Tgl. Lahir", 50, 300),
                line(": 01-02-1980", 400, 300)]  # fmt: skip
    assert values(parse("kpj_card", labelled)) == {"kpj": "12345678901", "name": "AHMAD HIDAYAT"}
    bare = [line("BPJS Ketenagakerjaan", 200, 30), line("AHMAD HIDAYAT", 50, 200),
            line("12345678901", 50, 260), line("Perusahaan", 50, 320),
            line(": PT ABADI", 400, 320)]  # fmt: skip
    assert values(parse("kpj_card", bare)) == {"kpj": "12345678901", "name": "AHMAD HIDAYAT"}
    # Two different 11-digit numbers and no label: no KPJ, and so no name beside it.
    two = [*bare, line("98765432109", 50, 400)]
    assert values(parse("kpj_card", two)) == {"kpj": None, "name": None}


def test_bank_book_labels_and_separators() -> None:
    for label, holder in (("No. Rekening", "Nama"), ("Nomor Rekening", "Nama Nasabah"),
                          ("No Rek", "Atas Nama")):  # fmt: skip
        lines = [line("BANK RAKYAT INDONESIA", 50, 30), line(label, 50, 200),
                 line(": 0123-01-012345-50-1", 500, 200), line(holder, 50, 260),
                 line(": HJ. WULAN HAKIM", 500, 260), line("Cabang", 50, 320),
                 line(": KC MEDAN", 500, 320)]  # fmt: skip
        fields = parse("buku_tabungan", lines)
        assert values(fields) == {
            "account_number": "012301012345501",
            "holder_name": "HJ. WULAN HAKIM",
        }
    with pytest.raises(ValueError, match="cannot read 'kk'"):
        parse("kk", [])


def test_rows_group_lines_by_vertical_overlap_and_order_them_left_to_right() -> None:
    found = rows([line("bbb", 300, 102), line("aaa", 10, 100), line("ccc", 10, 140)])
    assert [r.text for r in found] == ["aaa bbb", "ccc"]
    # A card read upside down: the engine's lines are right, their places turned.
    upside = turn_lines(ktp_lines(), 180, 1200, 760)
    assert values(parse("ktp", turn_lines(upside, 180, 1200, 760))) == values(
        parse("ktp", ktp_lines())
    )


def test_a_slanted_picture_reads_as_a_level_one() -> None:
    lines = ktp_lines()
    for degrees in (-30, -12, 8, 25):
        cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
        slanted = [
            TextLine(
                t.text, t.score, tuple((cos * x - sin * y, sin * x + cos * y) for x, y in t.box)
            )
            for t in lines
        ]
        assert values(parse("ktp", slanted)) == values(parse("ktp", lines)), degrees


def test_an_account_number_is_10_to_16_digits_not_a_date() -> None:
    for value, read in ((": 17-01-2015", None), (": 1234567", None), (": 12345678901234567", None),
                        (": 123-45-6789-0", "1234567890")):  # fmt: skip
        lines = [line("No. Rekening", 50, 200), line(value, 500, 200)]
        assert parse("buku_tabungan", lines)["account_number"].value == read, value


# --- labels and distances ---------------------------------------------------------------------


def test_split_label_prefers_the_longer_label_and_the_exact_cut() -> None:
    keys = ("NAMA", "NAMANASABAH", "TEMPATTGLLAHIR")
    assert split_label("Nama Nasabah : BUDI", keys) == ("NAMANASABAH", "BUDI", 1.0, 15)
    assert split_label("Nama : BUDI", keys)[:2] == ("NAMA", "BUDI")  # type: ignore[index]
    # A label missing a letter is cut where it ends, not a letter into the value.
    assert split_label("Tempae/Tg Lahir MANADO, 1-2-1990", keys)[1] == "MANADO, 1-2-1990"  # type: ignore[index]
    assert split_label("BANK TABUNGAN NEGARA", ("PEMILIKREKENING", "NOREKENING")) is None


words = st.text(alphabet=string.ascii_uppercase, max_size=12)


@given(words, words, words)
def test_distance_is_a_metric(a: str, b: str, c: str) -> None:
    assert distance(a, b) == distance(b, a)
    assert (distance(a, b) == 0) == (a == b)
    assert distance(a, c) <= distance(a, b) + distance(b, c)
    assert abs(len(a) - len(b)) <= distance(a, b) <= max(len(a), len(b))


@given(words, words, st.floats(0.5, 1.0))
def test_ratio_with_a_floor_agrees_above_it(a: str, b: str, floor: float) -> None:
    exact = ratio(a, b)
    quick = ratio(a, b, floor)
    assert quick == exact if exact >= floor else quick < floor


# --- dates ------------------------------------------------------------------------------------

days = st.dates(min_value=date(1930, 1, 1), max_value=date(2019, 12, 31))
_BY_NUMBER = {number: name for name, number in reversed(MONTHS.items())}  # the first: in full


@given(days, st.sampled_from(["{d:02d}-{m:02d}-{y}", "{d:02d}/{m:02d}/{y}", "{d}.{m}.{y}",
                              "{d:02d} {m:02d} {y}", "{y}-{m:02d}-{d:02d}", "{d} {M} {y}",
                              "{d:02d} {Mon} {y}", "{d:02d}-{Mon}-{y}"]))  # fmt: skip
def test_dates_in_the_formats_documents_use(day: date, fmt: str) -> None:
    month = _BY_NUMBER[day.month]
    text = fmt.format(d=day.day, m=day.month, y=day.year, M=month.title(), Mon=month[:3])
    assert parse_date(text) == day, text


def test_dates_examples_and_refusals() -> None:
    assert parse_date("17 Agustus 1945") == date(1945, 8, 17)
    assert parse_date("1 DES 2000") == date(2000, 12, 1)
    assert parse_date("O1-O7-1997") == date(1997, 7, 1)  # look-alikes in the numbers
    assert parse_date("05-06-97", pivot=2026) == date(1997, 6, 5)
    assert parse_date("05-06-21", pivot=2026) == date(2021, 6, 5)
    for bad in ("31-02-1990", "12-13-1990", "JAKARTA", "", "1-2", "30 FOO 1990"):
        assert parse_date(bad) is None, bad


@given(days, st.sampled_from("MF"), st.integers(11, 96), st.integers(1, 9999))
def test_a_nik_carries_its_holders_birth_date_and_sex(born: date, sex: str, province: int,
                                                      serial: int) -> None:  # fmt: skip
    day = born.day + (40 if sex == "F" else 0)
    nik = f"{province:02d}0101{day:02d}{born.month:02d}{born.year % 100:02d}{serial:04d}"
    encoded = nik_birth(nik)
    assert encoded is not None and is_nik(nik)
    assert encoded.agrees_with(born, sex)
    other = "F" if sex == "M" else "M"
    assert not encoded.agrees_with(sex=other)
    assert not encoded.agrees_with(born=born.replace(year=born.year - 1))


def test_nik_birth_refuses_digits_that_are_no_date() -> None:
    assert nik_birth("3174053208900002") is None  # day 32
    assert nik_birth("3174057208900002") is None  # day 72 (32 + 40)
    assert nik_birth("3174051513900002") is None  # month 13
    assert nik_birth("317405") is None
    assert nik_birth("3174056902000002") is not None  # 29 February (+40): a leap-year NIK


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("MUH. RIZKY SAPUTRA", "MUHAMMAD RIZKY SAPUTRA"),
        ("MOCH. ARIF", "MOHAMMAD ARIF"),
        ("M. RIZKY", "MUHAMMAD RIZKY"),
        ("H. AHMAD HIDAYAT", "AHMAD HIDAYAT"),
        ("HJ. SITI AMINAH", "SITI AMINAH"),
        ("SITI AMINAH, S.E.", "SITI AMINAH"),
        ("BUDI SANTOSO, S.Kom., M.M.", "Budi Santoso"),
        ("DRS. BUDI  SANTOSO", "budi santoso"),
        ("ABD. RAHMAN", "ABDUL RAHMAN"),
        ("MA'RUF", "MARUF"),
    ],
)
def test_titles_abbreviations_case_and_spacing_do_not_count(a: str, b: str) -> None:
    assert name_similarity(a, b) == 1.0, (name_tokens(a), name_tokens(b))


def test_names_of_other_people_differ_and_slips_cost_a_little() -> None:
    assert name_similarity("SITI AMINAH", "SITI AMlNAH") >= NAME_MATCH  # one slip
    assert name_similarity("FAJAR NURHALIZA", "FAJARNURHALIZA") == 1.0  # a lost space
    assert 0.9 <= name_similarity("A. RAHMAN", "ABDUL RAHMAN") < 1.0  # an initial
    for a, b in (("SITI AMINAH", "SITI RAHAYU"), ("BUDI SANTOSO", "AGUS SANTOSO"),
                 ("DEWI LESTARI", "RINA WIJAYA"), ("AHMAD HIDAYAT", "HIDAYAT")):  # fmt: skip
        assert name_similarity(a, b) < NAME_MATCH, (a, b)
    assert normalise_name("H. MUH. RIZKY SAPUTRA, S.KOM") == "MUHAMMAD RIZKY SAPUTRA"
    assert name_similarity("", "BUDI") == 0.0


name_words = st.lists(st.text(alphabet="ABCDEFGHIJKLMNOPRSTUWY", min_size=3, max_size=9),
                      min_size=1, max_size=4)  # fmt: skip


@given(name_words, st.sampled_from(["", "H. ", "HJ. ", "DRS. "]),
       st.sampled_from(["", ", S.E.", ", S.KOM", ", S.H., M.M."]),
       st.sampled_from([str.upper, str.lower, str.title]))  # fmt: skip
def test_similarity_is_one_whatever_the_titles_and_case(parts: list[str], before: str, after: str,
                                                        case) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    assume(not {"H", "HJ", "DR", "DRS", "M", "SE", "SH", "ST", "MM"} & set(parts))
    name = " ".join(parts)
    assert name_similarity(name, case(before + "  ".join(parts) + after)) == 1.0


@given(name_words, name_words)
def test_similarity_is_symmetric_and_bounded(a: list[str], b: list[str]) -> None:
    x, y = " ".join(a), " ".join(b)
    assert name_similarity(x, y) == pytest.approx(name_similarity(y, x))
    assert 0.0 <= name_similarity(x, y) <= 1.0


# --- comparison with the member record --------------------------------------------------------


def test_a_reading_compared_with_the_member_record() -> None:
    fields = parse("ktp", ktp_lines(name="HJ. SITI NURHALIZA, S.E."))
    record = {"nik": "3174056708900002", "name": "Siti Nurhaliza", "birth_place": "KOTA JAKARTA",
              "birth_date": date(1990, 8, 27), "sex": "P"}  # fmt: skip
    result = compare(fields, record)
    assert {k: c.state for k, c in result.items()} == dict.fromkeys(record, Match.MATCHES)
    assert result["name"].score == 1.0 and result["nik"].score == 1.0
    # Someone else's KTP: every identity field differs.
    other = parse("ktp", ktp_lines(nik="3273011201850003", name="BUDI SANTOSO",
                                   birth="BANDUNG, 12-01-1985", sex="LAKI-LAKI"))  # fmt: skip
    differs = compare(other, record)
    assert {k: c.state for k, c in differs.items()} == dict.fromkeys(record, Match.DIFFERS)
    assert differs["name"].score is not None and differs["name"].score < NAME_MATCH
    # Unreadable stays unreadable (never "differs"); fields the record lacks are skipped.
    blurred = parse("ktp", ktp_lines(score=0.5))
    assert {c.state for c in compare(blurred, record).values()} == {Match.UNREADABLE}
    assert set(compare(fields, {"nik": "3174056708900002"})) == {"nik"}


def test_record_dates_in_any_format_and_sex_codes() -> None:
    fields = parse("ktp", ktp_lines())
    for written in ("27-08-1990", "27/08/1990", "27 Agustus 1990", "1990-08-27"):
        assert compare(fields, {"birth_date": written})["birth_date"].state is Match.MATCHES
    assert compare(fields, {"birth_date": "28-08-1990"})["birth_date"].state is Match.DIFFERS
    assert [sex_code(s) for s in ("L", "Laki-laki", "P", "Perempuan", "X")] == [
        "M",
        "M",
        "F",
        "F",
        None,
    ]
    one_off = compare(fields, {"nik": "3174056708900003"})["nik"]
    assert one_off.state is Match.DIFFERS and one_off.score == pytest.approx(15 / 16, abs=1e-3)


def test_digit_runs_find_numbers_inside_text() -> None:
    assert digit_runs("NIK: 3174O56708900002 ") == [("3174056708900002", 1)]
    assert digit_runs("no digits here") == []
