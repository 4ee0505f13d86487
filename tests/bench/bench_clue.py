"""CLUe benchmarks: render 10 000 auths, 50 paced creates, collect 20 000 events.

- render: `ClueTarget.render` + digest of 10 000 people (pure work a plan does for each
  person at every run); target ≤ 2 s.
- pacing: 20 creates through a ClueTarget session at the vendor's pace
  (`min_interval_ms = 300`: writes start at least 300 ms apart); target ≤ 1.05 × N × 300 ms
  (issue 18), with (N − 1) × 300 ms, the pace's own floor, as anchor (loopback emulator,
  no latency).
- events: 20 000 CLUe events over 14 days (three 7-day windows, pages of 200) collected
  into a SQLite ledger; target ≤ 30 s. A second collect (nothing new) is shown in notes.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from syncd.config import ClueTargetConfig, SecretRef
from syncd.emulators.clue import create_clue_app
from syncd.emulators.clue_state import ClueState
from syncd.emulators.server import EmulatorServer
from syncd.engine.events import collect_from
from syncd.ledger import migrate
from syncd.ledger.store import Ledger, create_ledger_engine
from syncd.model import Action, Op, Person, digest
from syncd.targets.clue.target import ClueTarget

KEY = "bench-clue-key"
ENV = "SYNCD_BENCH_CLUE_KEY"
PEOPLE = 10_000
EVENTS = 20_000
PACED = 20
PACE_S = 0.3


def _target(url: str = "http://127.0.0.1:1", **settings: Any) -> ClueTarget:
    values: dict[str, Any] = {"min_interval_ms": 300, "events_lookback_days": 14}
    config = ClueTargetConfig(
        type="clue", url=url, place_id=178, api_key=SecretRef(env=ENV), **(values | settings)
    )
    return ClueTarget("cloud", config)


def _person(index: int) -> Person:
    return Person(
        key=f"E{index:06d}",
        first_name="Ada",
        last_name=f"Lovelace{index}",
        valid_from=datetime(2020, 1, 1, tzinfo=UTC) + timedelta(days=index % 1000),
        cards=(1_000_000 + index,),
        pin=f"{index % 10000:04d}",
    )


def bench_render() -> dict[str, object]:
    target = _target()
    people = [_person(i) for i in range(PEOPLE)]
    started = time.perf_counter()
    for person in people:
        digest(target.render(person, ()))
    took = time.perf_counter() - started
    return {
        "benchmark": f"render+digest {PEOPLE} auths",
        "measured": f"{took:.2f} s",
        "target": "≤ 1 s",
        "ok": took <= 1.0,
    }


async def _creates(target: ClueTarget) -> float:
    async with target.session() as session:
        started = time.monotonic()
        for index in range(PACED):
            record = target.render(_person(index), ())
            await session.apply(Action("cloud", f"E{index:06d}", Op.CREATE, record, digest(record)))
        return time.monotonic() - started


def bench_pacing() -> dict[str, object]:
    state = ClueState(place_id=178, api_key=KEY)
    with EmulatorServer(create_clue_app(state)) as server:
        took = asyncio.run(_creates(_target(server.url)))
    limit = PACED * PACE_S
    floor = (PACED - 1) * PACE_S
    return {
        "case": f"{PACED} creates at the 300 ms pace",
        "figure": f"{took:.2f} s = {took / limit:.3f} × N × 300 ms",
        "target": f"≤ 1.05 × {limit:g} s",
        "anchor": f"pace floor (N − 1) × 300 ms = {floor:.1f} s",
        "ok": floor <= took <= 1.05 * limit and len(state.auths) == PACED,
        "auths": len(state.auths),
    }


def bench_events() -> dict[str, object]:
    state = ClueState(place_id=178, api_key=KEY)
    now_ms = int(time.time() * 1000)
    span = 14 * 24 * 3600 * 1000 - 60_000
    for index in range(EVENTS):
        at = now_ms - span + index * (span // EVENTS)
        state.add_access_event("DEV_FACE_AUTH_SUCCESS", at_ms=at, user_key=f"E{index % 500:06d}")
    with tempfile.TemporaryDirectory() as tmp, EmulatorServer(create_clue_app(state)) as server:
        engine = create_ledger_engine(f"sqlite:///{Path(tmp) / 'ledger.db'}")
        migrate.upgrade(engine)
        targets = {"cloud": _target(server.url)}
        started = time.monotonic()
        first = collect_from(Ledger(engine), targets, lambda: datetime.now(UTC))
        took = time.monotonic() - started
        started = time.monotonic()
        collect_from(Ledger(engine), targets, lambda: datetime.now(UTC))
        again = time.monotonic() - started
        engine.dispose()
    stored = first.results[0].stored
    return {
        "benchmark": f"collect {EVENTS} CLUe events",
        "measured": f"{took:.2f} s",
        "target": "≤ 30 s",
        "ok": took <= 30 and stored == EVENTS,
        "stored": stored,
        "second collect": f"{again:.2f} s",
    }


def run() -> list[dict[str, object]]:
    """Run the CLUe benchmarks; return one row each."""
    os.environ[ENV] = KEY
    return [bench_render(), bench_pacing(), bench_events()]
