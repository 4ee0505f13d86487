"""The in-step mark's fingerprint: whatever a decision depends on besides the people and
the records changes it, so that a plan after a configuration change decides everyone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from syncd.config import Config
from syncd.engine.instep import fingerprint
from syncd.model import Desired, Enrollment, canonical_json, digest

AT = datetime(2026, 3, 2, tzinfo=UTC)


def _config(**changes: Any) -> Config:
    data: dict[str, Any] = {
        "ledger": {"url": "sqlite:///x.db"},
        "sources": {"hr": {"type": "csv", "path": "x.csv", "mapping": "m.toml"}},
        "targets": {"lobby": {"type": "ef45", "url": "http://127.0.0.1:1"}},
    }
    data.update(changes)
    return Config.model_validate(data)


def _keyed(record: Any) -> str:
    return digest({"key": 2, "record": canonical_json(record)})


def test_the_fingerprint_changes_with_what_decisions_depend_on() -> None:
    base = _config()
    plain = Desired(people={})
    first = fingerprint(base, ["lobby"], plain)
    assert fingerprint(_config(), ["lobby"], plain) == first  # stable
    enrolled = Desired(
        people={}, enrollments={"P1": (Enrollment("P1", "finger", "d", 1, "lobby", AT),)}
    )
    lobby = {"lobby": {"type": "ef45", "url": "http://127.0.0.1:1", "groups": ["staff"]}}
    two_sources = {
        "hr": {"type": "csv", "path": "x.csv", "mapping": "m.toml"},
        "more": {"type": "csv", "path": "y.csv", "mapping": "m.toml"},
    }
    others = [
        fingerprint(base, [], plain),  # a --target run plans fewer targets
        fingerprint(_config(targets=lobby), ["lobby"], plain),
        fingerprint(_config(safety={"delete_after_days": 3}), ["lobby"], plain),
        fingerprint(_config(safety={"protected_keys": ["P1"]}), ["lobby"], plain),
        fingerprint(_config(access={"create_ahead_days": 1}), ["lobby"], plain),
        fingerprint(_config(sources=two_sources), ["lobby"], plain),
        fingerprint(base, ["lobby"], Desired(people={}, digest_of=_keyed)),  # another PIN key
        fingerprint(base, ["lobby"], enrolled),
    ]
    assert first not in others
    assert len(set(others)) == len(others)
