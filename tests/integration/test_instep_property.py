"""Property: after delta reads, the plan of the due people only equals the full plan.

`engine.instep`: an apply that leaves every target in step marks the ledger; a later
plan whose reads are all deltas then decides only the people who may have moved. On
random histories — people hired (some starting later, inside or outside the
create-ahead period), changed, disabled, removed from the source, given validity
windows that `now` crosses, the clock moving past grace periods, terminals failing
(failed records with retry times), a removal cap blocking disables — every plan made
after a delta read is compared with the plan that decides everyone, at the same
instant on the same ledger: actions, blocked set, summaries, notes, boundaries.

Real HTTP to two emulated EF-45 terminals (one selects a group), a real SQLite ledger,
a source that answers deltas since its cursor like the LDAP source does.
"""

from __future__ import annotations

import dataclasses
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from syncd.config import Config
from syncd.emulators.ef45 import create_ef45_app
from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.faults import Faults
from syncd.emulators.server import EmulatorServer
from syncd.engine import instep
from syncd.engine.factory import build_targets
from syncd.engine.planner import PlanOptions, due_people, make_plan
from syncd.engine.run import ApplyOptions, Reading, Syncer
from syncd.ledger import migrate
from syncd.ledger.store import Ledger, create_ledger_engine
from syncd.model import Person, Status
from syncd.sources.base import SourceRead
from tests.fixtures.services import POSTGRES_URL, skip_or_fail

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OPS = st.sampled_from(
    ["hire", "hire_later", "card", "rename", "disable", "enable", "window", "remove", "group"]
)


class DeltaSource:
    """People in memory; a read with a cursor returns only who changed since it."""

    name = "hr"

    def __init__(self) -> None:
        self.people: dict[str, Person] = {}
        self.version = 0
        self.changed: dict[str, int] = {}  # key → version of its last change

    def put(self, person: Person) -> None:
        self.version += 1
        self.people[person.key] = person
        self.changed[person.key] = self.version

    def remove(self, key: str) -> None:
        self.version += 1
        self.people.pop(key, None)
        self.changed[key] = self.version

    def read(self, *, cursor: str | None = None, full: bool = True) -> SourceRead:
        if full or cursor is None:
            return SourceRead(people=dict(self.people), cursor=str(self.version))
        since = int(cursor)
        keys = {k for k, v in self.changed.items() if v > since}
        return SourceRead(
            people={k: self.people[k] for k in keys if k in self.people},
            complete=False,
            deleted=frozenset(k for k in keys if k not in self.people),
            cursor=str(self.version),
        )


class World:
    """One example: the terminals, the source, the clock, the syncer."""

    def __init__(self, syncer: Syncer, source: DeltaSource, faults: list[Faults]) -> None:
        self.syncer = syncer
        self.source = source
        self.faults = faults
        self.now = START
        self.hired = 0
        self.engaged = 0

    def change(self, op: str, pick: int) -> None:
        people = self.source.people
        keys = sorted(people)
        # A source left empty is refused (the shrink guard): someone always stays.
        if op.startswith("hire") or not keys or (op == "remove" and len(keys) == 1):
            self.hired += 1
            start = self.now + timedelta(days=pick % 9) if op == "hire_later" else None
            groups = frozenset({"staff"} if pick % 2 else {"visitors"})
            self.source.put(
                Person(
                    key=f"P{self.hired:03d}",
                    first_name="Ada",
                    last_name=f"L{self.hired}",
                    cards=(1000 + self.hired,),
                    groups=groups,
                    valid_from=start,
                )
            )
            return
        person = people[keys[pick % len(keys)]]
        if op == "card":
            person = dataclasses.replace(person, cards=(person.cards[0] + 500,))
        elif op == "rename":
            person = dataclasses.replace(person, last_name=person.last_name + "x")
        elif op == "disable":
            person = dataclasses.replace(person, status=Status.DISABLED)
        elif op == "enable":
            person = dataclasses.replace(person, status=Status.ACTIVE)
        elif op == "window":
            hours = timedelta(hours=(pick % 7) * 11 - 30)
            person = dataclasses.replace(
                person, valid_from=self.now + hours, valid_until=self.now + hours * -3
            )
            start, end = person.valid_from, person.valid_until
            if start is not None and end is not None and end <= start:
                person = dataclasses.replace(person, valid_until=None)
        elif op == "group":
            person = dataclasses.replace(person, groups=frozenset({"staff"}) - person.groups)
        elif op == "remove":
            self.source.remove(person.key)
            return
        self.source.put(person)

    def check_plan(self) -> None:
        """Plan after a delta read both ways and compare."""
        syncer = self.syncer
        reading = syncer.read(full=False)
        due = due_people(syncer.config, syncer.ledger, syncer.targets, reading)
        self.engaged += due is not None
        incremental = syncer.plan(reading)
        full = make_plan(syncer.config, syncer.ledger, syncer.targets, reading,
                         PlanOptions(incremental=False))  # fmt: skip
        assert incremental == full, (due, incremental.summaries, full.summaries)

    def apply(self, errors: bool, full: bool) -> None:
        for faults in self.faults:
            faults.error_rate = 0.4 if errors else 0.0
        self.syncer.apply(ApplyOptions(full=full))
        for faults in self.faults:
            faults.error_rate = 0.0


@contextmanager
def _postgres_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema per example (hypothesis cannot take a function fixture)."""
    admin = sa.create_engine(POSTGRES_URL)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        skip_or_fail(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc.orig}")
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def world(ledger: str = "sqlite") -> Iterator[World]:
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        faults = [Faults(seed=i) for i in range(2)]
        urls = [
            stack.enter_context(EmulatorServer(create_ef45_app(Ef45State(), f))).url for f in faults
        ]
        if ledger == "sqlite":
            url = f"sqlite:///{workdir / 'ledger.db'}"
        else:
            url = stack.enter_context(_postgres_schema())
        engine = create_ledger_engine(url)
        stack.callback(engine.dispose)
        migrate.upgrade(engine)
        config = Config.model_validate(
            {
                "ledger": {"url": url},
                "sources": {"hr": {"type": "csv", "path": "x.csv", "mapping": "m.toml"}},
                "targets": {
                    "lobby": {"type": "ef45", "url": urls[0], "timeout_s": 2},
                    "lab": {"type": "ef45", "url": urls[1], "timeout_s": 2, "groups": ["staff"]},
                },
                "safety": {
                    "max_deletes": 2,
                    "max_delete_share": 1.0,
                    "max_window_deletes": 3,
                    "max_window_delete_share": 1.0,
                    "max_source_shrink": 1.0,
                    "delete_after_days": 2,
                },
                "access": {"create_ahead_days": 3},
                "apply": {
                    "quarantine_after": 1000,
                    "retries": 0,
                    "retry_initial_s": 0,
                    "retry_max_s": 0,
                },
            }
        )
        source = DeltaSource()
        one = World(Syncer(config, Ledger(engine), {"hr": source}, build_targets(config)), source,
                    faults)  # fmt: skip
        one.syncer.clock = lambda: one.now
        stack.callback(one.syncer.close)
        yield one


STEP = st.tuples(
    st.lists(st.tuples(OPS, st.integers(0, 60)), max_size=3),
    st.sampled_from([0, 0, 1, 13, 30, 49, 24 * 3, 24 * 5]),  # hours the clock moves
    st.sampled_from(["apply", "apply", "apply", "errors", "full", "plan"]),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(population=st.integers(1, 5), steps=st.lists(STEP, min_size=2, max_size=7))
@example(  # a leaver's grace period ends while nothing else moves
    population=2,
    steps=[
        ([], 0, "apply"),
        ([("disable", 0)], 0, "apply"),
        ([], 0, "apply"),
        ([], 49, "apply"),
        ([], 0, "apply"),
    ],
)
@example(  # a window opens and closes by time alone
    population=2,
    steps=[
        ([("window", 5)], 0, "apply"),
        ([], 0, "apply"),
        ([], 30, "apply"),
        ([], 0, "apply"),
        ([], 72, "apply"),
        ([], 0, "apply"),
    ],
)
def test_incremental_plan_equals_full_plan(
    population: int, steps: list[tuple[list[tuple[str, int]], int, str]]
) -> None:
    _plans_agree("sqlite", population, steps)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(population=st.integers(1, 5), steps=st.lists(STEP, min_size=2, max_size=7))
def test_incremental_plan_equals_full_plan_on_postgresql(
    population: int, steps: list[tuple[list[tuple[str, int]], int, str]]
) -> None:
    """The same property on a PostgreSQL ledger: its partial indexes and window queries
    (revision 0005) answer as SQLite's do."""
    _plans_agree("postgresql", population, steps)


def _plans_agree(
    ledger: str, population: int, steps: list[tuple[list[tuple[str, int]], int, str]]
) -> None:
    with world(ledger) as one:
        for i in range(population):
            one.change("hire", i)
        one.apply(errors=False, full=True)
        for changes, hours, action in steps:
            for op, pick in changes:
                one.change(op, pick)
            one.now += timedelta(hours=hours)
            one.check_plan()
            if action != "plan":
                one.apply(errors=action == "errors", full=action == "full")
            one.check_plan()


def test_a_delta_of_one_after_a_clean_apply_decides_that_one() -> None:
    """The mark is set by a clean apply and used: a delta of one person is decided alone
    (plus the records not settled), and its summary counts everyone else unchanged."""
    with world() as one:
        for i in range(6):
            one.change("hire", i)
        one.apply(errors=False, full=True)
        assert one.syncer.ledger.get_cursor(instep.CURSOR)
        one.change("card", 2)
        syncer = one.syncer
        reading = syncer.read(full=False)
        due = due_people(syncer.config, syncer.ledger, syncer.targets, reading)
        assert due == frozenset({"P003"})
        plan = syncer.plan(reading)
        full = make_plan(syncer.config, syncer.ledger, syncer.targets, reading,
                         PlanOptions(incremental=False))  # fmt: skip
        assert plan == full
        lobby = next(s for s in plan.summaries if s.target == "lobby")
        assert (lobby.update, lobby.unchanged) == (1, 5)


def test_an_apply_with_failures_withdraws_the_mark() -> None:
    """A run that leaves an action failed marks nothing: the next plan decides everyone."""
    with world() as one:
        for i in range(4):
            one.change("hire", i)
        one.apply(errors=False, full=True)
        assert one.syncer.ledger.get_cursor(instep.CURSOR)
        for i in range(4):
            one.change("rename", i)
        one.faults[0].error_rate = 1.0
        one.syncer.apply(ApplyOptions(full=False))
        one.faults[0].error_rate = 0.0
        assert one.syncer.ledger.get_cursor(instep.CURSOR) == ""
        reading: Reading = one.syncer.read(full=False)
        syncer = one.syncer
        assert due_people(syncer.config, syncer.ledger, syncer.targets, reading) is None


def test_the_mark_holds_through_dry_runs_only() -> None:
    """Dry runs leave the mark usable; a later writing run that did not withdraw it (an
    older syncd's) leaves it unused."""
    with world() as one:
        for i in range(3):
            one.change("hire", i)
        one.apply(errors=False, full=True)
        syncer = one.syncer

        def due() -> frozenset[str] | None:
            reading = syncer.read(full=False)
            return due_people(syncer.config, syncer.ledger, syncer.targets, reading)

        syncer.record_dry_run(syncer.plan(syncer.read(full=False)))
        assert due() == frozenset()
        syncer.ledger.start_run(kind="apply", trigger="cli", dry_run=False, now=one.now)
        assert due() is None
