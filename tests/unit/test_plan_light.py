"""The plan of a large ledger (records not loaded, settled ones kept as digests) is the
plan of the same ledger loaded in full: same actions, field changes, notes and counts."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta

from syncd.engine.plan import Policy, compute_plan, field_changes
from syncd.errors import RecordError
from syncd.model import (
    Desired,
    Enrollment,
    FieldChange,
    HeldRecord,
    HeldTable,
    Op,
    Person,
    Plan,
    Record,
    RecordState,
    Status,
    count_present,
    digest,
)
from tests.unit.test_plan import NOW, FakeTarget, held_for, person


class AlikeTarget(FakeTarget):
    """Terminals configured alike (one render key); "bad" cannot be rendered."""

    @property
    def render_key(self) -> tuple[str, str]:
        return (self.kind, "alike")

    def render(self, person: Person, enrollments: Sequence[Enrollment]) -> Record:
        if person.key == "bad":
            raise RecordError("valid_until", "ends before it starts")
        return super().render(person, enrollments)


def _settled(record: HeldRecord) -> bool:
    return (
        record.state is RecordState.OK
        and record.digest is not None
        and record.remote_id is not None
        and record.created_by_syncd
        and record.disabled_since is None
        and record.attempts == 0
        and record.next_attempt_at is None
    )


def light(target: str, held: Mapping[str, HeldRecord]) -> HeldTable:
    """Return `held` as `Ledger.load_held(with_records=False)` returns it."""
    settled = {k: h for k, h in held.items() if _settled(h)}
    return HeldTable(
        target,
        {k: str(h.digest) for k, h in settled.items()},
        {k: str(h.remote_id) for k, h in settled.items() if h.remote_id != k},
        {
            k: dataclasses.replace(h, record=None, last_error=None)
            for k, h in held.items()
            if k not in settled
        },
    )


def both_plans(
    desired: Desired, targets: list[FakeTarget], held: dict[str, dict[str, HeldRecord]]
) -> tuple[Plan, Plan]:
    """Return the plan on records loaded in full, and the plan as the run's planner makes it
    on a large ledger (light tables, then the records behind the actions)."""
    policy = Policy(delete_after=timedelta(days=30), protected_keys=frozenset({"prot"}))
    full = compute_plan(desired, targets, held, policy, NOW)
    tables = {name: light(name, records) for name, records in held.items()}

    def load_records(keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Record]:
        found = ((k, held[k[0]][k[1]].record) for k in keys)
        return {k: record for k, record in found if record is not None}

    return full, compute_plan(desired, targets, tables, policy, NOW, load_records=load_records)


def _ledger(target: FakeTarget, people: dict[str, Person]) -> dict[str, HeldRecord]:
    """Every kind of held record, consistent as the ledger writes them."""
    off = {k: dataclasses.replace(p, status=Status.DISABLED) for k, p in people.items()}
    long_ago = NOW - timedelta(days=40)
    return {
        "same": held_for(target, people["same"]),
        "card": held_for(target, dataclasses.replace(people["card"], cards=(7,))),
        "pin": held_for(target, dataclasses.replace(people["pin"], pin="0000")),
        "remote": held_for(target, people["remote"], remote_id="auth-17"),
        "remote2": held_for(target, people["remote2"], remote_id="auth-18", digest="old"),
        "off": held_for(target, dataclasses.replace(people["off"], status=Status.ACTIVE)),
        "gone": held_for(target, people["gone"]),
        "gone_old": held_for(target, off["gone_old"], disabled_since=long_ago),
        "retry": held_for(
            target,
            people["retry"],
            state=RecordState.FAILED,
            attempts=2,
            next_attempt_at=NOW + timedelta(hours=1),
            digest="old",
        ),
        "failed": held_for(target, people["failed"], state=RecordState.FAILED, attempts=1),
        "pending": HeldRecord(target.name, "pending", RecordState.PENDING),
        "pending_gone": HeldRecord(target.name, "pending_gone", RecordState.PENDING),
        "prot": held_for(target, dataclasses.replace(people["prot"], cards=(1,))),
        "bad": HeldRecord(target.name, "bad", RecordState.OK, "x", {"name": "?"}, "bad"),
        "foreign": held_for(target, people["foreign"], created_by_syncd=False, digest="old"),
    }


def _people() -> tuple[dict[str, Person], dict[str, Person]]:
    keys = ["same", "card", "pin", "remote", "remote2", "off", "gone", "gone_old", "retry"]
    keys += ["failed", "pending", "pending_gone", "prot", "bad", "foreign", "new"]
    everyone = {k: person(k) for k in keys}
    everyone["off"] = dataclasses.replace(everyone["off"], status=Status.DISABLED)
    gone = {k: everyone.pop(k) for k in ("gone", "gone_old", "pending_gone")}
    return everyone, gone


def test_light_plan_equals_the_plan_on_full_records() -> None:
    present, gone = _people()
    targets: list[FakeTarget] = [AlikeTarget("t1"), AlikeTarget("t2"), FakeTarget("solo")]
    held = {t.name: _ledger(t, {**present, **gone}) for t in targets}
    del held["t2"]["same"]  # one target lacks a record the others hold
    desired = Desired(people=present, gone=gone)

    full, light_plan = both_plans(desired, targets, held)

    assert light_plan == full
    ops = {(a.person_key, a.op) for a in full.actions if a.target == "t1"}
    assert ops >= {("card", Op.UPDATE), ("off", Op.DISABLE), ("gone_old", Op.DELETE)}
    assert ("pending_gone", Op.DELETE) in ops and ("new", Op.CREATE) in ops
    assert [s.deferred for s in full.summaries] == [1, 1, 1]
    assert any("bad" in note for note in full.notes)
    update = next(a for a in light_plan.actions if a.person_key == "card")
    assert update.changes == (FieldChange("card", 7, 42),)


def test_light_plan_of_a_ledger_in_step_is_empty() -> None:
    targets: list[FakeTarget] = [AlikeTarget("t1"), AlikeTarget("t2")]
    people = {k: person(k) for k in ("a", "b", "c")}
    held = {t.name: {k: held_for(t, p) for k, p in people.items()} for t in targets}

    full, light_plan = both_plans(Desired(people=people), targets, held)

    assert light_plan == full
    assert light_plan.actions == () and [s.unchanged for s in full.summaries] == [3, 3]


def test_held_table_reads_like_the_dict_it_stands_for() -> None:
    target = FakeTarget()
    held = _ledger(target, {**_people()[0], **_people()[1]})
    table = light(target.name, held)
    expected = {k: dataclasses.replace(h, record=None, last_error=None) for k, h in held.items()}

    assert dict(table) == expected
    assert len(table) == len(expected) and set(table) == set(expected)
    assert "same" in table and "nobody" not in table and table.get("nobody") is None
    assert table["remote"].remote_id == "auth-17" and table["same"].remote_id == "same"
    assert count_present(table) == count_present(expected) == len(held) - 2


def test_field_changes_of_records_of_different_shapes() -> None:
    before = {"a": 1, "b": 2, "pin": "1"}
    after = {"b": 3, "c": 4, "pin": "2"}

    changes = field_changes(before, after, frozenset({"pin"}))

    assert [(c.name, c.before, c.after) for c in changes] == [
        ("a", 1, None),
        ("b", 2, 3),
        ("c", None, 4),
        ("pin", "<redacted>", "<redacted>"),
    ]
    assert field_changes(before, dict(before), frozenset()) == ()
    assert digest(before) == digest(dict(reversed(before.items())))
