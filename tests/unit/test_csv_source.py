"""The HR CSV source: encodings, delimiters, line numbers, bad rows, refusals."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from syncd.config import CsvSourceConfig
from syncd.errors import SourceError, SourceRefused
from syncd.mapping import load_mapping
from syncd.model import Status
from syncd.sources.base import Decision, SourceRead
from syncd.sources.csv import CsvSource, detect_encoding, sniff_delimiter

MAPPING = Path(__file__).resolve().parents[2] / "mappings" / "hr-csv.toml"
HR = load_mapping(MAPPING)
HEADER = (
    "employee_id,first_name,last_name,email,department,status,start_date,end_date,badge_number,pin"
)
GOOD = [
    "E1,Jürgen,Weiß,j@x.de,Engineering,active,2026-01-01,,1001,1234",
    "E2,Zoë,Ñúñez,z@x.de,Sales,leave,2025-06-30,2026-12-31,,",
    "E3,Ada,Løvelace,a@x.de,HR,active,2024-02-29,,1003|1004,",
]


def read(path: Path, **config: Any) -> SourceRead:
    settings = {"max_bad_share": 1.0, **config}
    source_config = CsvSourceConfig(type="csv", path=path, mapping=MAPPING, **settings)
    return CsvSource("hr", source_config, HR).read()


def write(tmp_path: Path, lines: list[str], *, encoding: str = "utf-8", sep: str = ",") -> Path:
    path = tmp_path / "people.csv"
    text = "\r\n".join(line.replace(",", sep) for line in lines) + "\r\n"
    path.write_bytes(text.encode(encoding))
    return path


def wheres(result: SourceRead) -> list[str]:
    return [problem.where for problem in result.problems]


# -- encodings and delimiters ---------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_encodings_and_delimiters_are_detected(tmp_path: Path, encoding: str, sep: str) -> None:
    path = write(tmp_path, [HEADER, *GOOD], encoding=encoding, sep=sep)
    result = read(path)
    assert result.problems == ()
    assert result.complete and result.cursor is None
    assert set(result.people) == {"E1", "E2", "E3"}
    assert result.people["E1"].last_name == "Weiß"
    assert result.people["E2"].first_name == "Zoë"
    assert result.people["E2"].status is Status.DISABLED
    assert result.people["E3"].cards == (1003, 1004)
    assert result.people["E1"].groups == {"engineering", "all"}


def test_explicit_encoding_and_delimiter(tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER, *GOOD], encoding="utf-8-sig", sep=";")
    result = read(path, encoding="utf-8", delimiter=";")
    assert set(result.people) == {"E1", "E2", "E3"}


def test_detect_encoding_and_sniff_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b"\xef\xbb\xbfa,b\n")
    assert detect_encoding(path) == "utf-8-sig"
    path.write_bytes("a,ß\n".encode())
    assert detect_encoding(path) == "utf-8"
    path.write_bytes("a,ß\n".encode("cp1252"))
    assert detect_encoding(path) == "cp1252"
    assert sniff_delimiter("a;b;c,d") == ";"
    assert sniff_delimiter("a\tb") == "\t"
    assert sniff_delimiter("single") == ","


def test_wrong_explicit_encoding_names_every_row_it_cannot_decode(tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER, *GOOD], encoding="cp1252")
    with pytest.raises(SourceRefused, match=r"3 of 3 rows") as info:
        read(path, encoding="utf-8")
    assert (
        "people.csv:2:first_name: (cell): status active; not valid UTF-8 at byte 1 of the cell"
        in str(info.value)
    )


# -- line numbers, blank lines, bad rows ------------------------------------------------


def test_embedded_newlines_and_blank_lines_keep_line_numbers_right(tmp_path: Path) -> None:
    lines = [
        "",  # line 1: blank before the header
        HEADER,  # 2
        'E1,"Anna',  # 3
        'Maria",Smith,a@x.de,Eng,active,2026-01-01,,1,',  # 4
        "",  # 5
        "E2,Bob,B,b@x.de,Eng,active,2026-13-01,,2,",  # 6: bad date
        ",,,,,,,,,",  # 7: a row of empty cells is blank
        'E3,"Multi',  # 8
        'line",Name,c@x.de,"Dept',  # 9
        'X",active,2026-01-01,,12x3,',  # 10: bad card on the cell's own line
    ]
    result = read(write(tmp_path, lines))
    assert result.people["E1"].first_name == "Anna\r\nMaria"
    assert wheres(result) == ["people.csv:6:start_date", "people.csv:10:badge_number"]
    assert [p.field for p in result.problems] == ["valid_from (start_date)", "cards (badge_number)"]
    assert "2026-13-01" in result.problems[0].message
    assert result.held == {"E3"} and result.disabled == {"E2"}  # an unreadable date: closed
    assert set(result.people) == {"E1"}


def test_bad_rows_are_held_disabled_or_skipped_and_named(tmp_path: Path) -> None:
    lines = [
        HEADER,
        *GOOD,
        "E4,A,B,,Eng,active,2026-01-01,31.12.2026,,",  # 5: bad end date
        "E5,A,B,,Eng,fired,2026-01-01,,,",  # 6: unknown status
        "E6,A,B,,Eng,active,2026-01-01,,,99x9",  # 7: bad PIN
        ",A,B,,Eng,active,2026-01-01,,,",  # 8: no key
        "E7,too,few",  # 9: wrong number of columns
        "E8,A,B,,Eng,active,2026-01-01,,,,extra",  # 10: too many columns
        "E9,A,B,,Eng,active,2026-01-01,,,,,",  # 11: trailing empty cells are fine
    ]
    result = read(write(tmp_path, lines))
    assert wheres(result) == [
        "people.csv:5:end_date",
        "people.csv:6:status",
        "people.csv:7:pin",
        "people.csv:8:employee_id",
        "people.csv:9",
        "people.csv:10",
    ]
    assert result.problems[3].message == "no readable key; missing"
    assert [p.decision for p in result.problems] == [
        Decision.DISABLED,
        Decision.HELD,
        Decision.HELD,
        Decision.SKIPPED,
        Decision.HELD,
        Decision.HELD,
    ]
    skipped = ": key (employee_id): no readable key; missing → skipped"
    assert str(result.problems[3]).endswith(skipped)
    assert result.held == {"E5", "E6", "E7", "E8"} and result.disabled == {"E4"}
    assert set(result.people) == {"E1", "E2", "E3", "E9"}


def test_a_pin_never_reaches_a_problem(tmp_path: Path) -> None:
    result = read(write(tmp_path, [HEADER, *GOOD, "E4,A,B,,Eng,active,2026-01-01,,,12ab98"]))
    (problem,) = result.problems
    assert problem.message == "status active; not a valid PIN"
    assert "12ab98" not in str(problem)


def test_duplicate_keys_are_both_reported_and_neither_applied(tmp_path: Path) -> None:
    lines = [HEADER, *GOOD, "E1,Other,Person,,Eng,active,2026-01-01,,,", GOOD[0]]
    result = read(write(tmp_path, lines))
    assert wheres(result) == [
        "people.csv:2:employee_id",
        "people.csv:5:employee_id",
        "people.csv:6:employee_id",
    ]
    assert all(p.field == "key (employee_id)" for p in result.problems)
    assert [p.message for p in result.problems] == [
        "duplicate key 'E1' (also line 5, line 6)",
        "duplicate key 'E1' (also line 2, line 6)",
        "duplicate key 'E1' (also line 2, line 5)",
    ]
    assert all(p.decision is Decision.HELD for p in result.problems)
    assert "E1" not in result.people and "E1" in result.held and not result.disabled
    assert set(result.people) == {"E2", "E3"}


def test_a_bad_row_and_a_good_row_with_one_key_are_a_duplicate(tmp_path: Path) -> None:
    lines = [HEADER, *GOOD, "E3,A,B,,Eng,active,2026-01-01,,12x3,"]
    result = read(write(tmp_path, lines))
    assert wheres(result) == [
        "people.csv:5:badge_number",
        "people.csv:4:employee_id",
        "people.csv:5:employee_id",
    ]
    assert "E3" not in result.people and "E3" in result.held


# -- refusals -------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"\r\n\r\n  \n", b"\xef\xbb\xbf"])
def test_empty_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(content)
    with pytest.raises(SourceRefused, match=r"hr: people\.csv: the file is empty"):
        read(path)


def test_header_only_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceRefused, match="no data rows"):
        read(write(tmp_path, [HEADER, ""]))


def test_missing_header_is_refused_without_echoing_data(tmp_path: Path) -> None:
    with pytest.raises(SourceRefused, match="lacks the column") as info:
        read(write(tmp_path, GOOD))
    assert "1234" not in str(info.value)


def test_header_lacking_a_column_is_refused(tmp_path: Path) -> None:
    header = HEADER.replace(",pin", "")
    with pytest.raises(SourceRefused, match=r"lacks the column\(s\) pin"):
        read(write(tmp_path, [header, "E1,A,B,,Eng,active,2026-01-01,,"]))


def test_header_columns_match_case_insensitively(tmp_path: Path) -> None:
    result = read(write(tmp_path, [HEADER.upper(), *GOOD]))
    assert set(result.people) == {"E1", "E2", "E3"}


def test_duplicate_header_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceRefused, match="names column 'Email' twice"):
        read(write(tmp_path, [HEADER + ",Email", GOOD[0] + ",x"]))


def test_bad_share_exceeded_is_refused(tmp_path: Path) -> None:
    lines = [HEADER, *GOOD, "E4,A,B,,Eng,active,bad,,,"]
    assert set(read(write(tmp_path, lines), max_bad_share=0.25).people) == {"E1", "E2", "E3"}
    with pytest.raises(SourceRefused, match=r"1 of 4 rows \(25.0%\).*people.csv:5:start_date"):
        read(write(tmp_path, lines), max_bad_share=0.2)


def test_all_rows_bad_is_refused_even_when_any_share_is_allowed(tmp_path: Path) -> None:
    with pytest.raises(SourceRefused, match="1 of 1 rows"):
        read(write(tmp_path, [HEADER, "E4,A,B,,Eng,active,bad,,,"]), max_bad_share=1.0)


def test_unclosed_quote_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceRefused, match="malformed CSV"):
        read(write(tmp_path, [HEADER, *GOOD, 'E4,"A,B,,Eng,active,2026-01-01,,,']))


def test_missing_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot read"):
        read(tmp_path / "absent.csv")


def test_cp1252_with_undefined_bytes_names_that_row(tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER, *GOOD], encoding="cp1252")
    with path.open("ab") as handle:
        handle.write(b"E4,\x81\x8d,B,,E,active,2026-01-01,,,\r\n")
    result = read(path)
    assert result.people["E1"].last_name == "Weiß"
    (problem,) = result.problems
    assert problem.where == "people.csv:5:first_name"
    assert problem.message == "status active; not valid cp1252 at byte 0 of the cell"
    assert result.held == {"E4"}


# -- generated files ------------------------------------------------------------------

cells = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12),
    st.sampled_from(["", "2026-13-01", "12x3", "fired", "x\ny", '"', "1|2", " ", "12ab"]),
)
GOOD_CELLS = ["Ann", "Lee", "a@x.de", "Eng", "active", "2026-01-01", "", "1001", ""]


@st.composite
def generated_row(draw: st.DrawFn) -> tuple[str, list[str], int]:
    """A good row with at most two cells replaced, a key, and a width change (-1, 0, +1)."""
    key = draw(st.one_of(st.integers(1, 40).map(lambda i: f"E{i}"), st.sampled_from(["", "E\n5"])))
    rest = list(GOOD_CELLS)
    for index, cell in draw(st.lists(st.tuples(st.integers(0, 8), cells), max_size=2)):
        rest[index] = cell
    width = draw(st.sampled_from([0, 0, 0, 0, 0, -1, 1]))
    return key, rest, width


rows = st.lists(generated_row(), min_size=1, max_size=15)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=rows, sep=st.sampled_from([",", ";", "\t"]))
def test_generated_rows_never_crash_and_every_bad_row_is_named(
    tmp_path: Path, data: list[tuple[str, list[str], int]], sep: str
) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=sep, lineterminator="\n")
    writer.writerow(HEADER.split(","))
    spans: list[tuple[list[str], int, int]] = []  # cells, first and last line of each row
    line = 2
    for key, rest, width in data:
        record = [key, *rest][: 10 + width] if width < 0 else [key, *rest, *[""] * width]
        if width > 0:
            record[-1] = "surplus"
        start = buffer.tell()
        writer.writerow(record)
        written = len(re.findall(r"\r\n|\r|\n", buffer.getvalue()[start:]))  # as io counts
        spans.append((record, line, line + written - 1))
        line += written
    path = tmp_path / "people.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    try:
        result = read(path)
    except SourceRefused:
        event("refused")
        return  # every row bad, or no data rows: refusing is the right answer
    event("read")
    problem_lines = [int(p.where.split(":")[1]) for p in result.problems]
    for record, first, last in spans:
        if not "".join(record).strip():
            continue  # a blank row is skipped, neither applied nor named
        applied = record[0].strip() in result.people
        named = any(first <= n <= last for n in problem_lines)
        assert applied != named, (record, first, last, result.problems)
    assert not set(result.people) & result.held
    assert not (set(result.people) | result.held) & result.disabled
