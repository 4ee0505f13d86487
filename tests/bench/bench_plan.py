"""Plan with N people × 10 targets: no-op plan and plan with 10 % changed, SQLite and PostgreSQL.

The ledger is filled directly (people + one target record per person and target, as a
completed first run would leave it), then `Syncer.plan` is timed on a reading of the same
people (no-op) and of people of whom 10 % changed their card. The source read is timed
apart: it is the CSV benchmark's subject.

A third row is what `syncd plan` does after a delta read of one entry (issue 18 point 2:
10 000 people ≤ 0.3 s, 100 000 ≤ 0.6 s, whole process): `Syncer.read` of a source whose
delta names one unchanged person, `Syncer.plan`, `Syncer.record_dry_run`, in process,
the ledger marked in step as a clean first run leaves it (`engine.instep`: only the due
people are decided).
The process's start is not in it (the start benchmark's subject): it is a lower bound of
the whole-process figure, so a miss here is a miss there.

Peak memory is the process's max RSS. CPU time is shown beside wall time: on a shared
machine it is the steadier figure.

Sizes and ledgers: SYNCD_BENCH_PLAN_PEOPLE (default "10000,100000") and
SYNCD_BENCH_PLAN_LEDGERS (default "sqlite,postgresql"); e.g.
`SYNCD_BENCH_PLAN_PEOPLE=100000 SYNCD_BENCH_PLAN_LEDGERS=sqlite python -m tests.bench plan`.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from syncd.config import Config, Ef45TargetConfig, LedgerConfig
from syncd.engine import instep
from syncd.engine.factory import build_targets
from syncd.engine.run import Reading, Syncer
from syncd.ledger import migrate
from syncd.ledger.schema import people, target_records
from syncd.ledger.store import Ledger, create_ledger_engine
from syncd.model import Desired, Person, canonical_json, digest
from syncd.sources.base import SourceRead

TARGETS = 10
POSTGRES_URL = os.environ.get(
    "SYNCD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
NOW = datetime(2026, 11, 22, tzinfo=UTC)
SIZES = [int(n) for n in os.environ.get("SYNCD_BENCH_PLAN_PEOPLE", "10000,100000").split(",")]
LEDGERS = os.environ.get("SYNCD_BENCH_PLAN_LEDGERS", "sqlite,postgresql").split(",")


def _people(count: int) -> dict[str, Person]:
    return {
        f"E{i:07d}": Person(
            key=f"E{i:07d}",
            first_name="Ada",
            last_name=f"Lovelace{i}",
            cards=(1_000_000 + i,),
            pin="",
            groups=frozenset({"all"}),
        )
        for i in range(count)
    }


def _config(url: str) -> Config:
    targets = {
        f"t{i}": Ef45TargetConfig(type="ef45", url=f"http://127.0.0.1:{20000 + i}")
        for i in range(TARGETS)
    }
    return Config.model_validate(
        {
            "ledger": LedgerConfig(url=url),
            "sources": {"hr": {"type": "csv", "path": "x.csv", "mapping": "m.toml"}},
            "targets": targets,
        }
    )


def _fill(engine: sa.Engine, config: Config, population: dict[str, Person]) -> None:
    targets = build_targets(config)
    with engine.begin() as conn:
        conn.execute(
            people.insert(),
            [
                {
                    "key": k,
                    "source": "hr",
                    "digest": digest(p.to_json()),
                    "data": canonical_json(p.to_json()),
                    "first_seen": NOW,
                    "last_seen": NOW,
                }
                for k, p in population.items()
            ],
        )
        for name, target in targets.items():
            rows = []
            for key, person in population.items():
                record = target.render(person, ())
                rows.append(
                    {
                        "target": name,
                        "person_key": key,
                        "remote_id": key,
                        "digest": digest(record),
                        "record": canonical_json(record),
                        "state": "ok",
                        "created_by_syncd": True,
                        "attempts": 0,
                        "updated_at": NOW,
                    }
                )
            conn.execute(target_records.insert(), rows)


def _time_plan(engine: Syncer, population: dict[str, Person]) -> tuple[float, float, int]:
    """Return (wall s, CPU s, pending actions) of one `Syncer.plan`."""
    reading = Reading(Desired(people=population), reads={}, now=NOW)
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    plan = engine.plan(reading)
    return time.perf_counter() - started, time.process_time() - cpu, plan.pending


def _changed(population: dict[str, Person]) -> dict[str, Person]:
    out = dict(population)
    for index, key in enumerate(population):
        if index % 10 == 0:
            out[key] = dataclasses.replace(population[key], cards=(9_000_000 + index,))
    return out


class _OneEntryDelta:
    """A source whose delta read names one person, unchanged (a full read: everyone)."""

    name = "hr"

    def __init__(self, population: dict[str, Person]) -> None:
        self._population = population

    def read(self, *, cursor: str | None = None, full: bool = True) -> SourceRead:
        if full or cursor is None:
            return SourceRead(people=self._population, cursor="bench")
        first = next(iter(self._population))
        return SourceRead(people={first: self._population[first]}, complete=False, cursor="bench")


def _time_delta_plan(
    config: Config, ledger: Ledger, population: dict[str, Person]
) -> tuple[float, float, int]:
    """Return (wall s, CPU s, pending actions) of read + plan + record of a dry run
    after a delta read of one entry."""
    source = _OneEntryDelta(population)
    syncer = Syncer(config, ledger, {"hr": source}, build_targets(config), clock=lambda: NOW)
    ledger.set_cursor("source:hr", "bench", NOW)
    # As a clean first run leaves it: every target in step, marked so (`engine.instep`).
    marked = instep.fingerprint(config, syncer.targets, syncer.read(full=False).desired)
    run_id = ledger.start_run(kind="apply", trigger="cli", dry_run=False, now=NOW)
    instep.mark(ledger, run_id, NOW, marked, NOW)
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    reading = syncer.read(full=False)
    plan = syncer.plan(reading)
    syncer.record_dry_run(plan, problems=reading.problems)
    return time.perf_counter() - started, time.process_time() - cpu, plan.pending


def measure(url: str, count: int, label: str) -> list[dict[str, Any]]:
    """Fill a ledger at `url` with `count` people × 10 targets and time two plans."""
    config = _config(url)
    ledger_engine = create_ledger_engine(url)
    migrate.upgrade(ledger_engine)
    population = _people(count)
    started = time.perf_counter()
    _fill(ledger_engine, config, population)
    fill_s = time.perf_counter() - started
    engine = Syncer(config, Ledger(ledger_engine), {}, build_targets(config), clock=lambda: NOW)
    noop_s, noop_cpu, noop_pending = _time_plan(engine, population)
    changed_s, changed_cpu, changed_pending = _time_plan(engine, _changed(population))
    delta_s, delta_cpu, delta_pending = _time_delta_plan(config, engine.ledger, population)
    delta_target = 0.6 if count >= 100_000 else 0.3 * count / 10_000
    engine.close()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    records = count * TARGETS
    return [
        {
            "benchmark": f"{label}: no-op plan, {count:,} people × {TARGETS} targets",
            "measured": f"{noop_s:.2f} s",
            "target": "≤ 5 s" if count >= 100_000 else "linear",
            "ok": noop_s <= 5 * count / 100_000 + 0.5,
            "cpu_s": round(noop_cpu, 2),
            "us_per_record": round(noop_s / records * 1e6, 2),
            "pending": noop_pending,
            "fill_s": round(fill_s, 1),
        },
        {
            "benchmark": f"{label}: plan with 10 % changed, {count:,} people",
            "measured": f"{changed_s:.2f} s",
            "target": "≤ 6 s" if count >= 100_000 else "linear",
            "ok": changed_s <= 6 * count / 100_000 + 0.5,
            "cpu_s": round(changed_cpu, 2),
            "us_per_record": round(changed_s / records * 1e6, 2),
            "pending": changed_pending,
            "peak_rss_mb_so_far": round(rss_mb),
        },
        {
            "benchmark": f"{label}: read + plan + record after a delta read of 1, {count:,} people",
            "measured": f"{delta_s:.2f} s",
            "target": f"≤ {delta_target:.1f} s whole process (this: in process)",
            "ok": delta_s <= delta_target,
            "cpu_s": round(delta_cpu, 2),
            "pending": delta_pending,
        },
    ]


def _measure_postgres(count: int) -> list[dict[str, Any]]:
    """`measure` in a fresh PostgreSQL schema, dropped afterwards."""
    schema = f"bench_{os.getpid()}_{count}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        return measure(f"{POSTGRES_URL}?options=-csearch_path%3D{schema}", count, "PostgreSQL")
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def run() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if "sqlite" in LEDGERS:
        for count in SIZES:
            with tempfile.TemporaryDirectory() as directory:
                rows += measure(f"sqlite:///{Path(directory) / 'ledger.db'}", count, "SQLite")
    if "postgresql" in LEDGERS:
        for count in SIZES:
            rows += _measure_postgres(count)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(
        {
            "benchmark": "peak memory of the whole run",
            "measured": f"{rss:.0f} MB",
            "target": "≤ 1 GB",
            "ok": rss <= 1024,
        }
    )
    return rows
