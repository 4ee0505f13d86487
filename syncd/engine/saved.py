"""Saved plans: `syncd plan --output plan.json`, then `syncd apply --plan plan.json`.

A saved plan is the JSON report (`syncd.plan/2`; a `/1` one still applies) plus a
`fingerprint` of what it was computed from: one aggregate digest of the source's people
and one of the ledger's records. Apply recomputes
both under the run lock; if either moved, the plan is stale and nothing is applied
(`PlanStale`). Otherwise exactly the approved actions — named by (target, person, op) —
are applied.

Only aggregate digests leave the ledger: a per-record digest next to the visible fields
of that record would let a reader test guesses of a 4-digit PIN offline.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from syncd.engine.narrow import ActionKey
from syncd.engine.report import SCHEMAS
from syncd.errors import ConfigError, PlanStale
from syncd.ledger.peopleindex import StoredPerson
from syncd.model import Digest, HeldRecord, Person, digest


@dataclass(frozen=True, slots=True)
class SavedPlan:
    """What an administrator approved: the fingerprint and the actions."""

    fingerprint: Mapping[str, str]
    actions: frozenset[ActionKey]
    blocked: frozenset[ActionKey] = frozenset()
    """The removals the plan showed as blocked by a cap: not in `actions` (not applied)
    unless `approving_blocked` is asked for."""

    def approving_blocked(self) -> tuple[SavedPlan, frozenset[tuple[str, str]]]:
        """Return this plan with its blocked removals approved too, and the (target,
        person) pairs to release from the caps (`Syncer.apply(released=…)`)."""
        released = frozenset((target, person) for target, person, _ in self.blocked)
        return SavedPlan(self.fingerprint, self.actions | self.blocked), released


def _aggregate(lines: list[str]) -> str:
    hasher = hashlib.sha256()
    for line in sorted(lines):
        hasher.update(line.encode("utf-8"))
        hasher.update(b"\n")
    return hasher.hexdigest()


def fingerprint(
    people: Mapping[str, Person],
    gone: Mapping[str, Person],
    stored: Mapping[str, StoredPerson],
    held: Mapping[str, Mapping[str, HeldRecord]],
    digest_of: Digest = digest,
) -> dict[str, str]:
    """Return {"source": …, "ledger": …}: aggregate digests of what a plan was made from,
    each person's by `digest_of` (the ledger's keyed digest: a saved plan confirms no PIN)."""
    source = [f"{k}\t{digest_of(p.to_json())}" for k, p in people.items()]
    source += [f"gone\t{k}" for k in gone]
    ledger = [f"{k}\t{p.digest}\t{p.gone_since}" for k, p in stored.items()]
    ledger += [
        f"{t}\t{k}\t{r.digest}\t{r.state.value}\t{r.disabled_since}\t{r.next_attempt_at}"
        for t, records in held.items()
        for k, r in records.items()
    ]
    return {"source": _aggregate(source), "ledger": _aggregate(ledger)}


def load_saved_plan(path: Path) -> SavedPlan:
    """Return the approved plan in `path`; raise ConfigError if it is not a saved plan."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("schema") not in SCHEMAS or "fingerprint" not in document:
            raise ValueError("not a syncd.plan report with a fingerprint")
        listed = [
            ((target, str(a["person"]), str(a["op"])), bool(a.get("blocked")))
            for target, items in document["targets"].items()
            for a in items
        ]
        actions = frozenset(key for key, blocked in listed if not blocked)
        blocked = frozenset(key for key, blocked in listed if blocked)
        return SavedPlan(dict(document["fingerprint"]), actions, blocked)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path}: cannot use as a saved plan: {exc}") from None


def check_fresh(saved: SavedPlan, current: Mapping[str, str]) -> None:
    """Return if nothing moved since the plan was saved; raise PlanStale naming what moved."""
    moved = [name for name in ("source", "ledger") if saved.fingerprint.get(name) != current[name]]
    if moved:
        raise PlanStale(
            f"the {' and the '.join(moved)} changed since this plan was made: nothing applied; "
            "make a new plan and review it"
        )
