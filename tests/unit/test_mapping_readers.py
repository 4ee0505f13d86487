"""The mapping's hot path: per-cell memos, and that fast reads give the general results."""

from __future__ import annotations

import contextlib
import gc
from pathlib import Path

import pytest

from syncd.config import CsvSourceConfig
from syncd.errors import SourceRefused
from syncd.mapping import FieldError, loads_mapping
from syncd.mapping.readers import by_cell
from syncd.model import RawRecord
from syncd.sources.csv import CsvSource

HR_MAPPING = Path(__file__).resolve().parents[2] / "mappings" / "hr-csv.toml"
HR_CSV = (
    "employee_id,first_name,last_name,email,department,status,start_date,end_date,badge_number,pin\n"
    "E1,Ann,Lee,a@x,HQ,active,2024-01-01,,1001,\n"
)


class Counting:
    """A compute function that counts its calls and fails on the text "bad"."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, raw: RawRecord) -> str:
        self.calls += 1
        value = raw.get("v")
        if value == "bad":
            raise ValueError("bad")
        return f"<{value!r}>"


def test_by_cell_remembers_text_cells_and_passes_other_values_through() -> None:
    compute = Counting()
    read = by_cell("v", compute)
    assert [read({"v": "a"}) for _ in range(3)] == ["<'a'>"] * 3
    assert compute.calls == 1
    assert read({"v": ["a"]}) == "<['a']>"  # an LDAP list: never remembered
    assert read({"V": "a"}) == "<None>"  # another spelling: the general path decides
    assert compute.calls == 3


def test_by_cell_never_remembers_a_failure() -> None:
    compute = Counting()
    read = by_cell("v", compute)
    for _ in range(2):
        with pytest.raises(ValueError, match="bad"):
            read({"v": "bad"})
    assert compute.calls == 2


def test_by_cell_keeps_remembering_repeated_values_across_refills() -> None:
    compute = Counting()
    read = by_cell("v", compute, size=8)
    # Two frequent values and a unique one every fifth row: the memo fills and is emptied
    # about five times, each time having paid, so it goes on remembering.
    cells = [f"u{n}" if n % 5 == 4 else str(n % 2) for n in range(200)]
    assert [read({"v": c}) for c in cells] == [f"<{c!r}>" for c in cells]
    assert compute.calls < 60  # 40 unique cells + the two frequent ones after each refill


def test_by_cell_stops_remembering_a_column_of_unique_values() -> None:
    compute = Counting()
    read = by_cell("v", compute, size=4)
    for n in range(10):  # the memo fills without a hit: off
        read({"v": str(n)})
    calls = compute.calls
    assert [read({"v": "0"}) for _ in range(3)] == ["<'0'>"] * 3
    assert compute.calls == calls + 3  # computed every time, results unchanged


def _mapping_text(fields: str) -> str:
    return (
        f'[fields]\nkey = "{{id}}"\nlast_name = "{{sn}}"\n{fields}\n[options]\nrequired = ["key"]\n'
    )


def test_repeated_cells_map_to_equal_people_and_errors_repeat() -> None:
    m = loads_mapping(
        _mapping_text(
            'status = "{st|map:on=active,off=disabled}"\n'
            'valid_from = "{d|date:%Y-%m-%d}"\n'
            'cards = "{c|decimal_card}"\n'
            'groups = "{g|lower}"'
        )
    )
    record = {"id": "1", "sn": "X", "st": "off", "d": "2020-01-01", "c": "7", "g": "HQ"}
    first, again = m.map(record), m.map({**record, "id": "2"})
    assert (first.status, first.valid_from, first.cards, first.groups) == (
        again.status,
        again.valid_from,
        again.cards,
        again.groups,
    )
    assert first.cards == (7,) and first.groups == frozenset({"hq"})
    for _ in range(2):  # a remembered field never hides a later bad value
        with pytest.raises(FieldError, match="not a date") as info:
            m.map({**record, "d": "2020-13-01"})
        assert info.value.attribute == "d"


def test_a_record_with_several_problems_reports_the_first_field_in_order() -> None:
    m = loads_mapping(_mapping_text('pin = "{p}"\nvalid_from = "{d|date:%Y-%m-%d}"'))
    with pytest.raises(FieldError) as info:
        m.map({"id": "1", "sn": "", "p": "x", "d": "bad"})
    assert info.value.person_field == "pin"  # text fields and the PIN come before dates


@pytest.mark.parametrize("enabled", [True, False])
def test_a_read_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path, enabled: bool) -> None:
    good = tmp_path / "good.csv"
    good.write_text(HR_CSV, encoding="utf-8")
    empty = tmp_path / "empty.csv"
    empty.write_text("\n", encoding="utf-8")
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        for path in (good, empty):
            config = CsvSourceConfig(type="csv", path=path, mapping=HR_MAPPING)
            source = CsvSource("hr", config, loads_mapping(HR_MAPPING.read_text()))
            with contextlib.suppress(SourceRefused):
                source.read()
            assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()
