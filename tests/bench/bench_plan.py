"""Plan with N people × 10 targets: no-op plan and plan with 10 % changed, SQLite and PostgreSQL.

The ledger is filled directly (people + one target record per person and target, as a
completed first run would leave it), then `Engine.plan` is timed on a reading of the same
people (no-op) and of people of whom 10 % changed their card. The source read is timed
apart: it is the CSV benchmark's subject. Peak memory is the process's max RSS.
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
from syncd.engine.plan import Desired
from syncd.engine.run import Engine, Reading
from syncd.ledger import migrate
from syncd.ledger.schema import people, target_records
from syncd.ledger.store import Ledger, create_ledger_engine
from syncd.model import Person, canonical_json, digest

TARGETS = 10
POSTGRES_URL = os.environ.get(
    "SYNCD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
NOW = datetime(2026, 11, 22, tzinfo=UTC)


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


def _time_plan(engine: Engine, population: dict[str, Person]) -> tuple[float, int]:
    reading = Reading(Desired(people=population), reads={})
    gc.collect()
    started = time.perf_counter()
    plan = engine.plan(reading)
    return time.perf_counter() - started, plan.pending


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
    engine = Engine(config, Ledger(ledger_engine), {}, build_targets(config), clock=lambda: NOW)
    noop_s, noop_pending = _time_plan(engine, population)
    changed_s, changed_pending = _time_plan(engine, _changed(population))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    records = count * TARGETS
    return [
        {
            "benchmark": f"{label}: no-op plan, {count:,} people × {TARGETS} targets",
            "measured": f"{noop_s:.2f} s",
            "target": "≤ 5 s" if count >= 100_000 else "linear",
            "ok": noop_s <= 5 * count / 100_000 + 0.5,
            "pending": noop_pending,
            "records": records,
            "fill_s": round(fill_s, 1),
        },
        {
            "benchmark": f"{label}: plan with 10 % changed, {count:,} people",
            "measured": f"{changed_s:.2f} s",
            "target": "≤ 6 s" if count >= 100_000 else "linear",
            "ok": changed_s <= 6 * count / 100_000 + 0.5,
            "pending": changed_pending,
            "peak_rss_mb": round(rss_mb),
        },
    ]


def run() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for count in (10_000, 100_000):
        with tempfile.TemporaryDirectory() as directory:
            rows += measure(f"sqlite:///{Path(directory) / 'ledger.db'}", count, "SQLite")
    schema = f"bench_{os.getpid()}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        rows += measure(f"{POSTGRES_URL}?options=-csearch_path%3D{schema}", 100_000, "PostgreSQL")
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
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
