"""Backfill benchmark: 10 000 enrolled people read from one EF-45 answering in 5 ms.

Each person has both eye templates (~700 base64 characters each, a realistic size) and
one face. The floor is the paging limit: (subject pages + face pages + lock/version
calls) × 5 ms, since the terminal is asked one request at a time; the in-process
emulator adds its own cost (JSON of ~1.4 kB per subject), so a bare walk of both lists
is measured too. Measured: wall time of `backfill` (each template digested, encrypted
and written, one transaction per page) and the process's peak resident memory (the
emulator's own copy of the templates included), target ≤ 500 MB. Time target: at most
twice the bare walk plus 5 s.
"""

from __future__ import annotations

import asyncio
import base64
import os
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from syncd.config import load_config, shipped_path
from syncd.emulators.ef45 import create_ef45_app
from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.faults import Faults
from syncd.emulators.server import EmulatorServer
from syncd.engine.backfill import backfill
from syncd.engine.run import Syncer
from syncd.ledger import migrate
from syncd.ledger.crypto import generate_key_text
from syncd.ledger.store import create_ledger_engine
from syncd.model import Person
from syncd.targets.ef45.client import Ef45Client

PEOPLE = 10_000
LATENCY_MS = 5.0
PAGE_SIZE = 50
MEMORY_TARGET_MB = 500.0


def _terminal() -> Ef45State:
    state = Ef45State(capacity=PEOPLE + 10)
    for index in range(PEOPLE):
        key = f"P{index:05d}"
        state.subjects[key] = {
            "user_uuid": key,
            "record_version": state.record_version,
            "last_name": f"Person {index}",
            "left_eye_template": base64.b64encode(os.urandom(512)).decode(),
            "right_eye_template": base64.b64encode(os.urandom(512)).decode(),
        }
        state.faces[key] = {
            0: {
                "user_uuid": key,
                "sub_id": 0,
                "face_feature": base64.b64encode(os.urandom(384)).decode(),
            }
        }
    return state


def _config(tmp: Path, url: str) -> Path:
    key = tmp / "templates.key"
    key.write_text(generate_key_text(), encoding="utf-8")
    key.chmod(0o600)
    (tmp / "people.csv").write_text("employee_id\n", encoding="utf-8")
    path = tmp / "syncd.toml"
    path.write_text(
        f'[ledger]\nurl = "sqlite:///{tmp}/ledger.db"\n\n[templates]\nkey = {{file = "{key}"}}\n\n'
        f'[sources.hr]\ntype = "csv"\npath = "{tmp}/people.csv"\n'
        f'mapping = "{shipped_path("mappings", "hr-csv.toml")}"\n\n'
        f'[targets.lobby]\ntype = "ef45"\nurl = "{url}"\npage_size = {PAGE_SIZE}\n',
        encoding="utf-8",
    )
    return path


def _known_people(engine: Syncer) -> None:
    now = datetime.now(UTC)
    people = {
        f"P{i:05d}": Person(key=f"P{i:05d}", first_name="", last_name=f"Person {i}")
        for i in range(PEOPLE)
    }
    engine.ledger.save_people("hr", people, frozenset(), now)


def _paging_only(url: str) -> float:
    """Return the wall time of merely walking both lists (the emulator's own cost)."""

    async def walk() -> None:
        async with Ef45Client(base_url=url, page_size=PAGE_SIZE) as client:
            async for _ in client.iter_subjects():
                pass
            async for _ in client.iter_faces():
                pass

    started = time.monotonic()
    asyncio.run(walk())
    return time.monotonic() - started


def run() -> list[dict[str, object]]:
    state = _terminal()
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmulatorServer(create_ef45_app(state, Faults(latency_ms=LATENCY_MS))) as server,
    ):
        paging_s = _paging_only(server.url)
        config = load_config(_config(Path(tmp), server.url))
        db = create_ledger_engine(config.ledger.url)
        migrate.upgrade(db)
        db.dispose()
        engine = Syncer.from_config(config)
        try:
            _known_people(engine)
            before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            started = time.monotonic()
            result = backfill(engine)
            elapsed = time.monotonic() - started
        finally:
            engine.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pages = 2 * -(-PEOPLE // PAGE_SIZE) + 5  # subjects + faces pages, lock/version/unlock
    floor_s = pages * LATENCY_MS / 1000
    counts = result.per_target["lobby"]
    return [
        {
            "benchmark": f"backfill {PEOPLE} people (2 irises + 1 face), 5 ms/request",
            "measured": f"{elapsed:.1f} s",
            "target": f"≤ 2 × paging + 5 s = {2 * paging_s + 5:.1f} s",
            "ok": elapsed <= 2 * paging_s + 5 and counts["new"] == 3 * PEOPLE,
            "paging_limit": f"{floor_s:.1f} s ({pages} requests × 5 ms)",
            "paging_measured": f"{paging_s:.1f} s (walk only, in-process emulator)",
            "stored": counts["new"],
            "per_page_ms": round(1000 * elapsed / pages, 1),
        },
        {
            "benchmark": "backfill peak resident memory (process, emulator included)",
            "measured": f"{peak_mb:.0f} MB",
            "target": f"≤ {MEMORY_TARGET_MB:.0f} MB",
            "ok": peak_mb <= MEMORY_TARGET_MB,
            "before_backfill": f"{before_mb:.0f} MB",
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
