"""What a plan after a delta read loads (ledger revision 0005), on SQLite and PostgreSQL.

`Ledger.load_held_of(keys)` must answer for the given people exactly as the complete
`load_held` does, hold every record that is not settled, and count what it did not load;
`Ledger.unsettled_keys` names the people with such a record; `Ledger.people_index`
knows every key, each source's present people, the people whose window starts or ends
in a span, and decodes only the people it is asked for.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from syncd.ledger.peopleindex import StoredPerson
from syncd.ledger.schema import target_records
from syncd.ledger.store import Ledger
from syncd.model import HeldTable, Person, RecordState, count_present

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def _record(target: str, key: str, **overrides: Any) -> dict[str, Any]:
    row = {
        "target": target, "person_key": key, "remote_id": key, "digest": f"d-{target}-{key}",
        "record": "{}", "state": RecordState.OK.value, "created_by_syncd": True,
        "disabled_since": None, "attempts": 0, "next_attempt_at": None, "updated_at": NOW,
    }  # fmt: skip
    return row | overrides


ROWS = [
    _record("lobby", "P1"),  # settled
    _record("lobby", "P2", remote_id="uuid-2"),  # settled, its remote id not the key
    _record("lobby", "P3", disabled_since=NOW),  # a leaver in the grace period
    _record("lobby", "P4", state=RecordState.FAILED.value, attempts=2, next_attempt_at=NOW),
    _record("lab", "P1"),
    _record("lab", "P5", created_by_syncd=False),  # adopted
    _record("lab", "P6", state=RecordState.PENDING.value, digest=None),
]


@pytest.fixture
def filled(ledger: Ledger) -> Ledger:
    with ledger.db.begin() as conn:
        conn.execute(target_records.insert(), ROWS)
    return ledger


def test_partial_tables_answer_as_the_complete_ones_for_the_people_asked(filled: Ledger) -> None:
    complete = filled.load_held(with_records=False)
    partial = filled.load_held_of({"P2", "P6", "P9"})
    assert set(partial) == set(complete) == {"lobby", "lab"}
    for name, table in partial.items():
        whole = complete[name]
        assert isinstance(table, HeldTable) and not table.complete
        for key in ("P2", "P3", "P4", "P5", "P6", "P9"):  # asked for, or not settled
            assert table.get(key) == whole.get(key), (name, key)
        assert table.unsettled() == HeldTable.of(name, whole).unsettled()
        assert count_present(table, with_access=True) == count_present(whole, with_access=True)
        assert count_present(table) == count_present(whole)
    assert partial["lobby"].get("P1") is None  # settled and not asked: not loaded …
    assert partial["lobby"].settled_count == 2  # … but counted
    assert partial["lobby"].get("P2").remote_id == "uuid-2"
    with pytest.raises(TypeError, match="in part only"):
        list(partial["lobby"])  # a walk would miss what was not loaded


def test_unsettled_keys_name_every_record_that_is_not_settled(filled: Ledger) -> None:
    assert filled.unsettled_keys() == {"P3", "P4", "P5", "P6"}


def _person(key: str, start: datetime | None = None, end: datetime | None = None) -> Person:
    return Person(key=key, first_name="A", last_name=key, valid_from=start, valid_until=end)


def test_people_index_reads_keys_and_decodes_only_what_it_is_asked(ledger: Ledger) -> None:
    soon = NOW + timedelta(days=2)
    ledger.save_people("hr", {"P1": _person("P1"), "P2": _person("P2", start=soon)},
                       frozenset(), NOW)  # fmt: skip
    ledger.save_people("dir", {"P3": _person("P3", end=soon)}, frozenset(), NOW)
    ledger.save_people("hr", {"P1": _person("P1")}, frozenset({"P2"}), NOW)  # P2 gone
    loads: list[object] = []
    index = ledger.people_index()
    load = index._load

    def counted(keys: Collection[str] | None) -> Mapping[str, StoredPerson]:
        loads.append(None if keys is None else sorted(keys))
        return load(keys)

    index._load = counted

    assert set(index.keys()) == {"P1", "P2", "P3"}
    assert index.present_keys("hr") == {"P1"} and index.present_keys("dir") == {"P3"}
    span = (NOW, NOW + timedelta(days=3))
    assert index.window_keys(span, (NOW, NOW)) == {"P2"}
    assert index.window_keys((NOW, NOW), span) == {"P3"}
    assert index.window_keys(span, span) == {"P2", "P3"}
    assert index.window_keys((soon, NOW + timedelta(days=9)), (soon, soon)) == set()  # (lo, hi]

    index.prefetch(["P3", "nobody"])
    assert index.person("P3") == _person("P3", end=soon)
    assert loads == [["P3"]]  # one query, for the key the ledger holds
    assert index.person("P2").valid_from == soon  # not prefetched: everyone, once
    assert index.person("P1") == _person("P1")
    assert loads == [["P3"], None]
    with pytest.raises(KeyError):
        index.person("nobody")
