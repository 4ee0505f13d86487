"""Backfill: read the templates enrolled at EF-45 terminals back into the ledger.

For each EF-45 terminal (one after another, each under its own lock), stream `/subjects`
(eye templates) and `/faces` page by page: only one page of templates is in memory at a
time, and each page's writes are one ledger transaction. For people the ledger knows,
each (person, modality) template is compared by keyed digest with the ledger's:

- same digest → unchanged (its `seen_at` is touched);
- the digest belongs to another person in the ledger, or was refused before → refused;
- else the template competes with the ledger's: the newest capture wins (first time
  syncd saw that digest for that person, from the `changes` history: a terminal still
  holding an old template loses, a fresh re-enrollment wins); with
  `templates.prefer_origin`, a template from that terminal beats any other.
- an eye template that would be fanned out to another terminal is first checked on its
  origin terminal (`PUT /subjects/is-exist/template`): a match with another uuid is
  refused.

A refused template becomes a "duplicate_template" finding and is never stored, so never
fanned out. Templates of uuids the ledger does not know become "unknown_enrollment"
findings and are never imported as people. Once every terminal is read, enrollments
whose record version differs from a terminal's become "incompatible_template" findings.
With `face_images` (default: when a CLUe target is configured, the only consumer), the
`{uuid}_faroff.jpg` of each person whose face was read is stored as "face_image".

The whole backfill holds the run lock, so it never interleaves with an apply; it is
recorded as a run of kind "backfill", each stored template as an "enroll" change (digests
only).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from syncd.config import ClueTargetConfig, Ef45TargetConfig
from syncd.engine.backfill_scan import Candidate, Judge, ScanState
from syncd.engine.run import Engine
from syncd.errors import ConfigError, SyncdError, TargetError, cut
from syncd.ledger.findings import sync_findings
from syncd.ledger.runlock import run_lock
from syncd.ledger.templates import TemplateVault, TemplateWrite
from syncd.model import Person
from syncd.targets.base import selects_by_groups
from syncd.targets.ef45.client import Ef45Client, Ef45Rejected
from syncd.targets.ef45.target import Ef45Target
from syncd.targets.templates import (
    EYE_FIELDS,
    FACE_IMAGE,
    LEFT_IRIS,
    RIGHT_IRIS,
    face_modality,
    face_plaintext,
    is_device_template,
)


@dataclass
class BackfillResult:
    """Counts per terminal (seen, new, changed, unchanged, superseded, refused, unknown),
    terminals that could not be read, and the findings recorded by kind."""

    run_id: int
    per_target: dict[str, Counter[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    findings: Counter[str] = field(default_factory=Counter)

    @property
    def outcome(self) -> str:
        """ "ok", "partial" (some terminals failed) or "failed" (all did)."""
        if not self.errors:
            return "ok"
        return "failed" if len(self.errors) >= len(self.per_target) else "partial"

    def as_counts(self) -> dict[str, Any]:
        """Return a JSON-able summary for the runs table."""
        return {t: dict(c) for t, c in sorted(self.per_target.items())}


def backfill(
    engine: Engine,
    *,
    trigger: str = "cli",
    wait_lock_s: float = 0.0,
    face_images: bool | None = None,
) -> BackfillResult:
    """Under the run lock, read every EF-45 terminal's templates into the ledger.

    Raise ConfigError if no `[templates]` key is configured; a terminal that cannot be
    read is reported in the result (its findings are left as they were).
    """
    if engine.vault is None:
        raise ConfigError("backfill needs a [templates] key in syncd.toml (syncd keys generate)")
    terminals = {n: t for n, t in engine.targets.items() if isinstance(t, Ef45Target)}
    if face_images is None:
        face_images = any(isinstance(c, ClueTargetConfig) for c in engine.config.targets.values())
    with run_lock(engine.ledger.engine, wait_s=wait_lock_s):
        run_id = engine.ledger.start_run(
            kind="backfill", trigger=trigger, dry_run=False, now=engine.clock()
        )
        people = {k: p.person for k, p in engine.ledger.load_people().items()}
        runner = _Backfill(engine, engine.vault, terminals, people, run_id, face_images)
        result = asyncio.run(runner.run())
        message = "; ".join(f"{t}: {e}" for t, e in sorted(result.errors.items())) or None
        engine.ledger.finish_run(
            run_id, outcome=result.outcome, counts=result.as_counts(),
            now=engine.clock(), message=message,
        )  # fmt: skip
    return result


class _Backfill:
    """One backfill run over the EF-45 terminals."""

    def __init__(
        self,
        engine: Engine,
        vault: TemplateVault,
        terminals: Mapping[str, Ef45Target],
        people: Mapping[str, Person],
        run_id: int,
        face_images: bool,
    ) -> None:
        self.engine = engine
        self.vault = vault
        self.terminals = terminals
        self.people = people
        self.face_images = face_images
        templates = engine.config.templates
        prefer = templates.prefer_origin if templates is not None else None
        self.judge = Judge(vault, run_id, prefer, engine.clock)
        self.result = BackfillResult(run_id)
        self.versions: dict[str, int] = {}

    async def run(self) -> BackfillResult:
        """Read every terminal (a failing one is reported, the others go on)."""
        for name, target in self.terminals.items():
            self.result.per_target[name] = Counter()
            try:
                await self._terminal(name, target)
            except SyncdError as exc:
                self.result.errors[name] = cut(f"{type(exc).__name__}: {exc}")
        self._incompatible()
        return self.result

    async def _terminal(self, name: str, target: Ef45Target) -> None:
        async with target.client() as client:
            self.versions[name] = target.config.record_version or client.record_version
            state = ScanState(name, client.record_version, self.result.per_target[name])
            page = target.config.page_size
            async for batch in _batches(client.iter_subjects(), page):
                await self._subjects(client, state, batch)
            async for batch in _batches(client.iter_faces(), page):
                self._faces(state, batch)
            if self.face_images:
                await self._face_images(client, state)
        now = self.engine.clock()
        db = self.engine.ledger.engine
        found = {"unknown_enrollment": state.unknown, "duplicate_template": state.refused}
        for kind, seen in found.items():
            sync_findings(db, kind=kind, target=name, seen=seen, now=now)
            self.result.findings[kind] += len(seen)

    async def _subjects(
        self, client: Ef45Client, state: ScanState, batch: list[dict[str, Any]]
    ) -> None:
        writes: list[TemplateWrite] = []
        for subject in batch:
            uuid = str(subject.get("user_uuid") or "")
            eyes = {m: subject.get(f) for m, f in EYE_FIELDS.items()}
            texts = {m: t for m, t in eyes.items() if isinstance(t, str) and t}
            if not uuid or not texts:
                continue
            if uuid not in self.people:
                state.unknown[uuid] = "eye templates enrolled on the terminal; unknown to syncd"
                continue
            version = int(subject.get("record_version") or state.version)
            refused_before = state.counts["refused"]
            accepted = [
                w for m, t in sorted(texts.items())
                if (w := self.judge.consider(state, Candidate(uuid, m, t.encode(), version)))
            ]  # fmt: skip
            if state.counts["refused"] > refused_before:
                # One eye matches someone else: the whole enrollment is suspect.
                accepted = self._refuse_all(state, uuid, accepted, "with the other eye")
            if accepted and self._fans_out(uuid, state.target):
                accepted = await self._checked_on_device(client, state, uuid, accepted)
            writes.extend(accepted)
        self.judge.commit(state, writes)

    async def _checked_on_device(
        self, client: Ef45Client, state: ScanState, uuid: str, accepted: list[TemplateWrite]
    ) -> list[TemplateWrite]:
        by_modality = {w.modality: w.plaintext.decode("utf-8") for w in accepted}
        duplicate = await client.find_duplicate(
            by_modality.get(LEFT_IRIS, ""), by_modality.get(RIGHT_IRIS, "")
        )
        if not duplicate or duplicate == uuid:
            return accepted
        return self._refuse_all(state, uuid, accepted, f"matches enrolled subject {duplicate}")

    def _refuse_all(
        self, state: ScanState, uuid: str, accepted: list[TemplateWrite], why: str
    ) -> list[TemplateWrite]:
        for write in accepted:
            self.judge.refuse(state, uuid, write.digest, f"{write.modality} refused: {why}")
        return []

    def _fans_out(self, uuid: str, origin: str) -> bool:
        """Whether another EF-45 terminal (configured, read now or not) would receive
        this person's templates."""
        person = self.people[uuid]
        return any(
            name != origin and selects_by_groups(config.groups, person)
            for name, config in self.engine.config.targets.items()
            if isinstance(config, Ef45TargetConfig)
        )

    def _faces(self, state: ScanState, batch: list[dict[str, Any]]) -> None:
        writes: list[TemplateWrite] = []
        for face in batch:
            uuid = str(face.get("user_uuid") or "")
            sub_id = face.get("sub_id")
            if not uuid or not isinstance(sub_id, int):
                continue
            if uuid not in self.people:
                state.unknown[uuid] = "face enrolled on the terminal; unknown to syncd"
                continue
            state.faces_seen.add(uuid)
            candidate = Candidate(uuid, face_modality(sub_id), face_plaintext(face), state.version)
            if write := self.judge.consider(state, candidate):
                writes.append(write)
        self.judge.commit(state, writes)

    async def _face_images(self, client: Ef45Client, state: ScanState) -> None:
        for uuid in sorted(state.faces_seen):
            if (uuid, FACE_IMAGE) in self.judge.meta and uuid not in state.faces_changed:
                continue  # already stored, and no new face since: no need to fetch it
            try:
                image = await client.load_file(f"{uuid}_faroff.jpg")
            except Ef45Rejected as exc:
                if exc.status == 404:
                    continue  # no image captured for this person
                raise
            candidate = Candidate(uuid, FACE_IMAGE, image, state.version)
            if write := self.judge.consider(state, candidate):
                self.judge.commit(state, [write])

    def _incompatible(self) -> None:
        """Record, per terminal read, enrollments of another record version than its own."""
        now = self.engine.clock()
        for name, version in self.versions.items():
            target = self.terminals[name]
            seen: dict[str, list[str]] = {}
            for (uuid, modality), stored in sorted(self.judge.meta.items()):
                person = self.people.get(uuid)
                if (
                    is_device_template(modality)
                    and stored.record_version != version
                    and person is not None
                    and target.selects(person)
                ):
                    seen.setdefault(uuid, []).append(f"{modality}@{stored.record_version}")
            details = {
                uuid: f"not sent: captured as {', '.join(mods)}; the terminal has {version}"
                for uuid, mods in seen.items()
            }
            sync_findings(
                self.engine.ledger.engine, kind="incompatible_template", target=name,
                seen=details, now=now,
            )  # fmt: skip
            self.result.findings["incompatible_template"] += len(details)


async def _batches(
    items: AsyncIterator[dict[str, Any]], size: int
) -> AsyncIterator[list[dict[str, Any]]]:
    """Yield `items` in lists of `size` (one device page at a time stays in memory)."""
    batch: list[dict[str, Any]] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def failed_terminals(result: BackfillResult) -> TargetError | None:
    """Return the error to raise when some terminal could not be read, else None."""
    if not result.errors:
        return None
    names = ", ".join(sorted(result.errors))
    return TargetError(f"backfill could not read {len(result.errors)} terminal(s): {names}")
