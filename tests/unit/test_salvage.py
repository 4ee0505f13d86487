"""A defect never keeps a leaver in (issue 13, point 3): one rule for every source.

A defective record that says disabled, or whose validity cannot be read, disables its
person; duplicates disable when any of them says disabled and are held otherwise; any
other defect holds the key; no readable key skips the record. Shown here on the HR CSV
source and the mapping's `salvage`; the LDAP source is exercised against slapd in
tests/integration/test_ldap_source.py, the engine over HTTP in test_defective_rows.py.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.config import CsvSourceConfig
from syncd.engine.defects import disabled_people
from syncd.mapping import load_mapping, loads_mapping
from syncd.model import Person, Status
from syncd.sources.base import Decision, SourceProblem, SourceRead
from syncd.sources.csv import CsvSource
from syncd.sources.salvage import Triage

MAPPING = Path(__file__).resolve().parents[2] / "mappings" / "hr-csv.toml"
HR = load_mapping(MAPPING)
HEADER = (
    "employee_id,first_name,last_name,email,department,status,start_date,end_date,badge_number,pin"
)
GOOD = "G1,Gina,Good,g@x.de,Eng,active,2026-01-01,,1001,"


def read_rows(tmp_path: Path, *rows: str, **config: float) -> SourceRead:
    path = tmp_path / "people.csv"
    path.write_text("\n".join([HEADER, GOOD, *rows]) + "\n", encoding="utf-8")
    settings = {"max_bad_share": 1.0, **config}
    source_config = CsvSourceConfig(type="csv", path=path, mapping=MAPPING, **settings)
    return CsvSource("hr", source_config, HR).read()


def problems_of(read: SourceRead) -> list[tuple[str, str, Decision]]:
    return [(p.where, p.message, p.decision) for p in read.problems]


# -- one row per case ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "where", "message"),
    [
        pytest.param(
            "E1,Ann,Lee,,Eng,terminated,2020-01-01,31.12.2026,1002,",
            "people.csv:3:end_date",
            "status says disabled; not a date in the format %Y-%m-%d: '31.12.2026'",
            id="terminated-unreadable-end-date",
        ),
        pytest.param(
            "E1,Ann,Lee,,Eng,terminated,2020-01-01,,12x3,",
            "people.csv:3:badge_number",
            "status says disabled; not a decimal card number: '12x3'",
            id="terminated-bad-badge",
        ),
        pytest.param(
            "E1,Ann,Lee,,Eng,Terminated,2020-01-01,,1002,99x9",
            "people.csv:3:pin",
            "status says disabled; not a valid PIN",
            id="terminated-bad-pin",
        ),
        pytest.param(
            "E1,Ann,,,Eng,leave,2020-01-01,,1002,",
            "people.csv:3:last_name",
            "status says disabled; missing",
            id="leave-no-name",
        ),
        pytest.param(
            "E1,Ann,Lee,,Eng,inactive",
            "people.csv:3",
            "status says disabled; 6 columns where the header has 10",
            id="inactive-short-row",
        ),
        pytest.param(
            "E1,Ann,Lee,,Eng,terminated,2020-01-01,,1002,,surplus",
            "people.csv:3",
            "status says disabled; 11 columns where the header has 10",
            id="terminated-long-row",
        ),
        pytest.param(
            "E1,Ann,Lee,,Eng,active,2020-01-01,2026-02-30,1002,",
            "people.csv:3:end_date",
            "valid_until unreadable, fail closed; not a date in the format %Y-%m-%d: '2026-02-30'",
            id="active-unreadable-end-date",
        ),
        pytest.param(
            "E1,Ann,Lee,,Eng,active,01/02/2020,,1002,",
            "people.csv:3:start_date",
            "valid_from unreadable, fail closed; not a date in the format %Y-%m-%d: '01/02/2020'",
            id="active-unreadable-start-date",
        ),
        pytest.param(
            "E1,Ann,Lee,,Eng,fired,2020-01-01,soon,1002,",
            "people.csv:3:status",
            "valid_until unreadable, fail closed; unexpected value (expected one of: active, "
            "inactive, leave, terminated): 'fired'",
            id="unreadable-status-and-end-date",
        ),
    ],
)
def test_a_row_that_says_disabled_or_has_unreadable_validity_disables(
    tmp_path: Path, row: str, where: str, message: str
) -> None:
    result = read_rows(tmp_path, row)
    assert result.disabled == {"E1"}
    assert "E1" not in result.people and "E1" not in result.held
    assert problems_of(result) == [(where, message, Decision.DISABLED)]
    assert str(result.problems[0]).endswith(f"{message} → disabled")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "E1,Ann,Lee,,Eng,active,2020-01-01,,12x3,",
            "status active; not a decimal card number: '12x3'",
        ),
        (
            "E1,Ann,Lee,,Eng,fired,2020-01-01,,1002,",
            "status unreadable; unexpected value (expected one of: active, inactive, leave, ",
        ),
        ("E1,Ann,Lee,,Eng,,2020-01-01,,1002,", "status unreadable; not a status (expected"),
        ("E1,Ann,Lee", "status unreadable; 3 columns where the header has 10"),
        # cells beyond the header are not read: a date there disables no one
        ("E1,Ann,Lee,,Eng,active,2020-01-01,,1002,,x,2026-99", "status active; 12 columns"),
    ],
)
def test_any_other_defect_holds_the_key(tmp_path: Path, row: str, message: str) -> None:
    result = read_rows(tmp_path, row)
    assert result.held == {"E1"} and not result.disabled and "E1" not in result.people
    ((_, text, decision),) = problems_of(result)
    assert text.startswith(message) and decision is Decision.HELD


def test_a_row_without_a_readable_key_is_skipped(tmp_path: Path) -> None:
    result = read_rows(tmp_path, " ,Ann,Lee,,Eng,terminated,2020-01-01,bad,1002,")
    assert not result.held and not result.disabled and set(result.people) == {"G1"}
    assert problems_of(result) == [
        ("people.csv:3:employee_id", "no readable key; missing", Decision.SKIPPED)
    ]


# -- duplicates ----------------------------------------------------------------------


def test_two_rows_one_key_one_terminated_disable(tmp_path: Path) -> None:
    result = read_rows(
        tmp_path,
        "E1,Ann,Lee,,Eng,active,2020-01-01,,1002,",
        "E1,Ann,Lee,,Eng,terminated,2020-01-01,,1002,",
    )
    assert result.disabled == {"E1"} and not result.held and set(result.people) == {"G1"}
    assert problems_of(result) == [
        (
            "people.csv:3:employee_id",
            "duplicate key 'E1' (also line 4); another says disabled",
            Decision.DISABLED,
        ),
        (
            "people.csv:4:employee_id",
            "duplicate key 'E1' (also line 3); this record says disabled",
            Decision.DISABLED,
        ),
    ]


def test_two_rows_one_key_both_active_are_held(tmp_path: Path) -> None:
    result = read_rows(
        tmp_path,
        "E1,Ann,Lee,,Eng,active,2020-01-01,,1002,",
        "E1,Ann,Lea,,Eng,active,2020-01-01,,1002,",
    )
    assert result.held == {"E1"} and not result.disabled and set(result.people) == {"G1"}
    assert [p.decision for p in result.problems] == [Decision.HELD, Decision.HELD]


def test_a_defective_active_row_and_a_terminated_duplicate_disable(tmp_path: Path) -> None:
    result = read_rows(
        tmp_path,
        "E1,Ann,Lee,,Eng,active,2020-01-01,,12x3,",  # held alone
        "E1,Ann,Lee,,Eng,terminated,2020-01-01,,1002,",
    )
    assert result.disabled == {"E1"} and not result.held
    assert problems_of(result)[0] == (
        "people.csv:3:badge_number",
        "another record with this key says disabled; not a decimal card number: '12x3'",
        Decision.DISABLED,
    )
    assert all(p.decision is Decision.DISABLED for p in result.problems)


def test_an_unreadable_end_date_in_a_duplicate_disables(tmp_path: Path) -> None:
    result = read_rows(
        tmp_path,
        "E1,Ann,Lee,,Eng,active,2020-01-01,,1002,",
        "E1,Ann,Lee,,Eng,active,2020-01-01,never,1002,",
    )
    assert result.disabled == {"E1"} and not result.held


def test_many_duplicates_name_a_few_others(tmp_path: Path) -> None:
    rows = [f"E1,Ann,Lee{i},,Eng,active,2020-01-01,,1002," for i in range(6)]
    result = read_rows(tmp_path, *rows)
    assert len(result.problems) == 6 and result.held == {"E1"}
    assert (
        result.problems[0].message == "duplicate key 'E1' (also line 4, line 5, line 6 and 2 more)"
    )


# -- the share of bad rows -------------------------------------------------------------


def test_a_disabled_by_defect_row_counts_as_bad(tmp_path: Path) -> None:
    row = "E1,Ann,Lee,,Eng,terminated,2020-01-01,,12x3,"
    assert read_rows(tmp_path, row, max_bad_share=0.5).disabled == {"E1"}
    with pytest.raises(Exception, match=r"1 of 2 rows \(50\.0%\).*→ disabled"):
        read_rows(tmp_path, row, max_bad_share=0.4)


# -- the mapping's salvage -----------------------------------------------------------


def test_salvage_reads_what_it_can_and_never_raises() -> None:
    cells = ["E1", "A", "B", "", "Eng", "leave", "x", "y", "z", "w"]
    row = dict(zip(HEADER.split(","), cells, strict=True))
    assert HR.salvage(row) == ("E1", True, ("valid_from", "valid_until"))
    assert HR.salvage({**row, "status": "???"}).says_disabled is None
    assert HR.salvage({**row, "status": "active"}).says_disabled is False
    assert HR.salvage({"employee_id": ""}) == (None, None, ())


def test_salvage_reads_the_disabled_flag() -> None:
    ad = loads_mapping(
        '[fields]\nkey = "{id}"\ncards = "{c|decimal_card}"\n'
        '[options]\ndisabled_when = "{userAccountControl|uac_disabled}"\n'
    )
    bad = {"id": "1", "c": "x"}
    assert ad.salvage({**bad, "userAccountControl": ["514"]}) == ("1", True, ())
    assert ad.salvage({**bad, "userAccountControl": ["512"]}) == ("1", False, ())
    assert ad.salvage({**bad, "userAccountControl": ["x"]}) == ("1", None, ())
    both = loads_mapping(
        '[fields]\nkey = "{id}"\nstatus = "{s|map:a=active,d=disabled}"\n'
        '[options]\ndisabled_when = "{flag}"\n'
    )
    assert both.salvage({"id": "1", "s": "?", "flag": "true"}).says_disabled is True
    assert both.salvage({"id": "1", "s": "d", "flag": "?"}).says_disabled is True
    assert both.salvage({"id": "1", "s": "a", "flag": "?"}).says_disabled is None
    assert both.salvage({"id": "1", "s": "a", "flag": "no"}).says_disabled is False


# -- the triage directly (as the LDAP source uses it) ------------------------------------


def test_triage_of_entries_named_by_dn() -> None:
    triage = Triage("dir", "key (entryUUID)", lambda dn: (str(dn), str(dn)))
    triage.mapped(Person(key="k1", first_name="A", last_name="B"), "cn=a")
    triage.mapped(Person(key="k1", first_name="A", last_name="C"), "cn=b")
    triage.defective("cn=c", ("k2", None, ()), "cn=c", "status (x)", "not a status")
    triage.defective("cn=d", (None, True, ()), "cn=d", "key (entryUUID)", "missing")
    result = triage.result()
    assert result.held == {"k1", "k2"} and not result.disabled and not result.people
    assert result.problems == (
        SourceProblem("dir", "cn=c", "status (x)", "status unreadable; not a status"),
        SourceProblem(
            "dir", "cn=d", "key (entryUUID)", "no readable key; missing", Decision.SKIPPED
        ),
        SourceProblem("dir", "cn=a", "key (entryUUID)", "duplicate key 'k1' (also cn=b)"),
        SourceProblem("dir", "cn=b", "key (entryUUID)", "duplicate key 'k1' (also cn=a)"),
    )


# -- the engine's view of a disabled key ------------------------------------------------


def test_disabled_people_come_from_the_ledger_or_are_minimal() -> None:
    known = Person(key="k1", first_name="A", last_name="B", cards=(7,), groups=frozenset({"g"}))
    stored = {"k1": known}
    people = disabled_people(["k1", "k2"], stored)
    assert people["k1"] == Person(
        key="k1", first_name="A", last_name="B", cards=(7,), groups=frozenset({"g"}),
        status=Status.DISABLED,
    )  # fmt: skip
    assert people["k2"] == Person(key="k2", first_name="", last_name="", status=Status.DISABLED)


# -- generated defective rows ----------------------------------------------------------

CELLS = ["Ann", "Lee", "a@x.de", "Eng", "active", "2020-01-01", "", "1002", ""]
DEFECTS = {
    0: ["", "x\ny"],
    1: ["", " "],
    5: ["2026-13-01", "01.02.2020", "soon", ""],
    6: ["31.12.2026", "2026-02-30", "never"],
    7: ["12x3", "-1", "x"],
    8: ["12ab", "1", "x y"],
}
terminated = st.sampled_from(["terminated", "Terminated", "leave", "inactive", " INACTIVE "])


@st.composite
def defective_row(draw: st.DrawFn, status: st.SearchStrategy[str]) -> list[str]:
    """A row of key E1..E9 with `status`, up to three defective cells and a width change."""
    cells = list(CELLS)
    cells[4] = draw(status)
    for index in draw(st.lists(st.sampled_from(sorted(DEFECTS)), max_size=3)):
        cells[index] = draw(st.sampled_from(DEFECTS[index]))
    row = [draw(st.integers(1, 9).map(lambda i: f"E{i}")), *cells]
    width = draw(st.sampled_from([0, 0, -1, -4, 1, 2]))
    return row[:width] if width < 0 else [*row, *["surplus"] * width]


others = st.lists(defective_row(st.sampled_from(["active", "fired", ""])), max_size=6)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    leavers=st.lists(defective_row(terminated), min_size=1, max_size=4), rest=others, data=st.data()
)
def test_a_row_that_says_terminated_never_keeps_access(
    tmp_path: Path, leavers: list[list[str]], rest: list[list[str]], data: st.DataObject
) -> None:
    rows = data.draw(st.permutations([*leavers, *rest]))
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    result = read_rows(tmp_path, buffer.getvalue().rstrip("\n"))
    for key in {row[0] for row in leavers}:
        assert key not in result.held, (key, result.problems)
        person = result.people.get(key)
        assert person is None or person.status is Status.DISABLED, (key, result.problems)
        assert key in result.disabled or person is not None
    assert not set(result.people) & (result.held | result.disabled)
    assert not result.held & result.disabled
