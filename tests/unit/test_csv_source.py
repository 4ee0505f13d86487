"""The HR CSV source: encodings, delimiters, line numbers, bad rows, refusals."""

from __future__ import annotations

import csv
import io
import os
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
from syncd.sources.csvlines import BoundedLines, Overlong

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


# -- honest decoding --------------------------------------------------------------------


def test_one_invalid_byte_names_its_row_and_every_other_name_stays_intact(tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER, *GOOD, "E5,José,García,,Sales,active,2026-01-01,,,"])
    with path.open("ab") as handle:  # line 6: "Jos\xe9" as cp1252 wrote it
        handle.write(b"E4,Jos\xe9,B,,Eng,active,2026-01-01,,,\r\n")
    result = read(path, max_bad_share=0.2)
    assert result.people["E5"].first_name == "José"
    assert result.people["E1"].first_name == "Jürgen" and result.people["E1"].last_name == "Weiß"
    (problem,) = result.problems
    assert problem.where == "people.csv:6:first_name"
    assert problem.message == "status active; not valid UTF-8 at byte 3 of the cell"
    assert problem.decision is Decision.HELD
    assert result.held == {"E4"} and "E4" not in result.people


@pytest.mark.parametrize(
    ("row", "where", "decision"),
    [
        (b"E\xff4,A,B,,Eng,active,2026-01-01,,,", "employee_id", Decision.SKIPPED),
        (b"E4,A,B,,Eng,act\xefve,2026-01-01,,,", "status", Decision.HELD),
        (b"E4,A,B,,Eng,active,2026-01-01,2026-12-3\xb1,,", "end_date", Decision.DISABLED),
        (b"E4,A,B,,Eng,leave,2026-01-01,,,1\xa02", "pin", Decision.DISABLED),
    ],
)
def test_an_undecodable_cell_is_unreadable_to_the_salvage(
    tmp_path: Path, row: bytes, where: str, decision: Decision
) -> None:
    path = write(tmp_path, [HEADER, *GOOD])
    with path.open("ab") as handle:
        handle.write(row + b"\r\n")
    result = read(path)
    (problem,) = result.problems
    assert problem.where == f"people.csv:5:{where}" and problem.decision is decision
    assert "not valid UTF-8" in problem.message
    assert set(result.people) == {"E1", "E2", "E3"}
    assert ("E4" in result.disabled) == (decision is Decision.DISABLED)
    assert ("E4" in result.held) == (decision is Decision.HELD)


def test_a_clearly_cp1252_file_is_still_read_as_cp1252(tmp_path: Path) -> None:
    path = write(
        tmp_path, [HEADER, *GOOD, "E4,José,Müller,,Eng,active,2026-01-01,,,"], encoding="cp1252"
    )
    assert detect_encoding(path) == "cp1252"
    result = read(path)
    assert result.problems == ()
    assert result.people["E4"].first_name == "José" and result.people["E1"].last_name == "Weiß"


def test_a_file_with_valid_and_invalid_utf8_is_utf8(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes("a,é\n".encode() + b"b,\xe9\n")
    assert detect_encoding(path) == "utf-8"
    path.write_bytes(b"a,\xe9\n" + b"b" * 100_000 + "é\n".encode())  # the valid one comes late
    assert detect_encoding(path) == "utf-8"
    path.write_bytes(b"a" * 65_535 + "é".encode())  # a sequence split between two chunks
    assert detect_encoding(path) == "utf-8"
    path.write_bytes(b"a" * 65_535 + "é".encode()[:1])  # cut off at the end: invalid only
    assert detect_encoding(path) == "cp1252"
    path.write_bytes(b"plain,ascii\n")
    assert detect_encoding(path) == "utf-8"


def test_an_undecodable_header_refuses_the_file_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(b"\r\n" + HEADER.encode().replace(b"email", b"e\xe9mail") + b"\r\n")
    with path.open("ab") as handle:
        handle.write("E1,Zoë,B,,Eng,active,2026-01-01,,,\r\n".encode())
    with pytest.raises(SourceRefused, match=r"line 2: the header is not valid UTF-8 \(byte 1 "):
        read(path)


# -- bounds -----------------------------------------------------------------------------


def test_a_cell_over_the_limit_names_its_row_and_column_and_the_rest_is_read(
    tmp_path: Path,
) -> None:
    lines = [
        HEADER,
        *GOOD,
        "E4,A," + "x" * 65 + ",,Eng,active,2026-01-01,,,",  # 5: 65 bytes
        "E5,A," + "é" * 33 + ",,Eng,active,2026-01-01,,,",  # 6: 33 characters, 66 bytes
        "E6,A," + "é" * 32 + ",,Eng,active,2026-01-01,,,",  # 7: 64 bytes: fits
        'E7,"x\n' + "y" * 70 + '",B,,Eng,active,2026-01-01,,,',  # 8-9: over, named on line 8
        "E8,A,B,,Eng,active,2026-01-01,,,",  # 10
    ]
    result = read(write(tmp_path, lines), max_cell_bytes=64)
    assert wheres(result) == [
        "people.csv:5:last_name",
        "people.csv:6:last_name",
        "people.csv:8:first_name",
    ]
    assert result.problems[0].message == "status active; 65 bytes, more than max_cell_bytes 64"
    assert result.problems[1].message == "status active; 66 bytes, more than max_cell_bytes 64"
    assert result.held == {"E4", "E5", "E7"}
    assert set(result.people) == {"E1", "E2", "E3", "E6", "E8"}


def test_a_cell_over_the_csv_modules_own_limit_is_one_bad_row(tmp_path: Path) -> None:
    big = "x" * 200_000  # over both csv's 128 Ki characters and max_cell_bytes' default
    lines = [HEADER, *GOOD, f"E4,A,{big},,Eng,active,2026-01-01,,,", GOOD[0].replace("E1", "E5")]
    result = read(write(tmp_path, lines))
    (problem,) = result.problems
    assert problem.where == "people.csv:5:last_name"
    assert problem.message.endswith("200000 bytes, more than max_cell_bytes 131072")
    assert set(result.people) == {"E1", "E2", "E3", "E5"} and result.held == {"E4"}


def test_a_row_past_every_bound_is_skimmed_and_named_and_the_rest_is_read(
    tmp_path: Path,
) -> None:
    # max_cell_bytes 16 and 10 columns: a record is read whole up to 176 characters.
    huge = "\n".join("z" * 60 for _ in range(500))  # 30 000 characters over 500 lines
    lines = [
        HEADER,
        *GOOD,
        "E4,A,B,c@x.de,Eng,active,2026-01-01," + "9" * 500 + ",,",  # 5: one line
        f'E5,"{huge}",B,,Eng,active,2026-01-01,,,',  # 6-505
        "E6,A,B,,Eng,active,2026-01-01,,,",  # 506
        "E7,A,B,,Eng,active,2026-13-01,,,",  # 507: bad date, named on its own line
    ]
    result = read(write(tmp_path, lines), max_cell_bytes=16)
    assert wheres(result) == [
        "people.csv:5:end_date",
        "people.csv:6:first_name",  # where the cell begins
        "people.csv:507:start_date",
    ]
    skimmed = result.problems[0].message
    assert skimmed.startswith("valid_until unreadable, fail closed; the row passes 176 characters")
    assert result.problems[0].decision is Decision.DISABLED  # its end date cannot be trusted
    assert result.problems[1].decision is Decision.DISABLED  # so are its dates, skimmed
    assert result.problems[1].message.endswith("(and 4 more cell(s))")
    assert "E6" in result.people and not result.held and result.disabled == {"E4", "E5", "E7"}


@pytest.mark.parametrize("length", range(172, 182))
def test_a_line_break_at_the_read_bound_keeps_line_numbers_right(
    tmp_path: Path, length: int
) -> None:
    row = "E4,A,B,,Eng,active,2026-01-01,,,"
    row = row.replace("E4,A", "E4,A" + "a" * (length - len(row)))
    result = read(
        write(tmp_path, [HEADER, *GOOD, row, "E5,A,B,,Eng,active,bad,,,"]), max_cell_bytes=16
    )
    assert wheres(result)[-1] == "people.csv:6:start_date"
    assert "E5" in result.disabled and set(result.people) >= {"E1", "E2", "E3"}


def test_an_unclosed_quote_is_refused_once_it_runs_past_the_cap(tmp_path: Path) -> None:
    path = write(tmp_path, ["a,b", 'x,"unclosed', *["1,2"] * 2000])
    with path.open(newline="") as handle:
        lines = BoundedLines(handle, 100, 10_000)
        reader = csv.reader(lines, strict=True)
        assert next(reader) == ["a", "b"]
        lines.rows(",", 50, skim_cap=1000)
        lines.next_record()
        with pytest.raises(Overlong, match="a row runs on past 1000 characters"):
            next(reader)
    with pytest.raises(SourceRefused, match="malformed CSV"):  # within the cap: at its end
        read(write(tmp_path, [HEADER, *GOOD, 'E4,"A,B,,Eng,active,2026-01-01,,,', *GOOD]))


def test_a_line_without_end_before_the_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(b"x" * 200_000)
    with pytest.raises(SourceRefused, match=r"line 1: a line longer than 65536 characters"):
        read(path)


def test_a_file_over_max_file_bytes_is_refused_unread(tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER, *GOOD])
    size = path.stat().st_size
    assert set(read(path, max_file_bytes=size).people) == {"E1", "E2", "E3"}
    with pytest.raises(SourceRefused, match=rf"{size} bytes, more than max_file_bytes {size - 1}"):
        read(path, max_file_bytes=size - 1)
    os.truncate(path, 600 * 1024**2)  # sparse: over the default 512 MiB, nothing written
    with pytest.raises(SourceRefused, match=r"629145600 bytes, more than max_file_bytes 536870912"):
        read(path)


def test_a_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "people.csv"
    os.mkfifo(fifo)
    with pytest.raises(SourceRefused, match=r"people\.csv: not a regular file"):
        read(fifo)
