"""Plan with N people × 10 targets: no-op plan and plan with 10 % changed, SQLite and PostgreSQL.

The ledger is filled directly (people + one target record per person and target, as a
completed first run would leave it), then `Syncer.plan` is timed on a reading of the same
people (no-op) and of people of whom 10 % changed their card. The source read is timed
apart: it is the CSV benchmark's subject. Peak memory is the process's max RSS. CPU time
is shown beside wall time: on a shared machine it is the steadier figure.

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
from syncd.engine.factory import build_targets
from syncd.engine.run import Reading, Syncer
from syncd.ledger import migrate
from syncd.ledger.schema import people, target_records
from syncd.ledger.store import Ledger, create_ledger_engine
from syncd.model import Desired, Person, canonical_json, digest

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
