"""Backfill: read the templates enrolled at the devices back into the ledger.

For each target that holds templates (`targets.base.HoldsTemplates`: each EF-45
terminal; one after another, each under its own lock), its `TemplateReader` yields what
the device holds page by page (`HeldTemplates`, typed; the wire format is the target's,
`targets.ef45.backfill`): only one page of templates is in memory at a time, and each
page's writes are one ledger transaction. For people the ledger knows, each (person,
modality) template is compared by keyed digest with the ledger's:

- same digest → unchanged (its `seen_at` is touched);
- the digest belongs to another person in the ledger, or was refused before → refused;
- else the template competes with the ledger's: the newest capture wins (first time
  syncd saw that digest for that person, from the `changes` history: a terminal still
  holding an old template loses, a fresh re-enrollment wins); with
  `templates.prefer_origin`, a template from that terminal beats any other.
- templates the device can check (an EF-45's eyes) that would be fanned out to another
  terminal are first checked on their origin device (`TemplateReader.find_match`): a
  match with another person is refused.

A refused template becomes a "duplicate_template" finding and is never stored, so never
fanned out. Templates of uuids the ledger does not know become "unknown_enrollment"
findings and are never imported as people. Once every terminal is read, enrollments
whose record version differs from a terminal's become "incompatible_template" findings.
With `face_images` (default: when a CLUe target is configured, the only consumer), the
face image (`TemplateReader.image`) of each person whose face was read is stored as
"face_image".

The whole backfill holds the run lock, so it never interleaves with an apply; it is
recorded as a run of kind "backfill", each stored template as an "enroll" change (digests
only).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from syncd.config import ClueTargetConfig, Ef45TargetConfig
from syncd.engine import stopping
from syncd.engine.backfill_scan import Candidate, Judge, ScanState
from syncd.engine.run import Syncer
from syncd.errors import ConfigError, SyncdError, TargetError, cut
from syncd.ledger.deadruns import close_dead_runs
from syncd.ledger.findings import sync_findings
from syncd.ledger.runlock import run_lock
from syncd.ledger.templates import TemplateVault, TemplateWrite
from syncd.model import Person, RunOutcome
from syncd.targets.base import (
    HeldTemplates,
    HoldsTemplates,
    TemplateReader,
    selects_by_groups,
)
from syncd.targets.templates import FACE_IMAGE, face_sub_id, is_device_template


@dataclass
class BackfillResult:
    """Counts per terminal (seen, new, changed, unchanged, superseded, refused, unknown),
    terminals that could not be read, and the findings recorded by kind."""

    run_id: int
    per_target: dict[str, Counter[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    findings: Counter[str] = field(default_factory=Counter)

    @property
    def outcome(self) -> RunOutcome:
        """OK, PARTIAL (some terminals failed) or FAILED (all did)."""
        if not self.errors:
            return RunOutcome.OK
        failed = len(self.errors) >= len(self.per_target)
        return RunOutcome.FAILED if failed else RunOutcome.PARTIAL

    def as_counts(self) -> dict[str, Any]:
        """Return a JSON-able summary for the runs table."""
        return {t: dict(c) for t, c in sorted(self.per_target.items())}


def backfill(
    syncer: Syncer,
    *,
    trigger: str = "cli",
    wait_lock_s: float = 0.0,
    face_images: bool | None = None,
) -> BackfillResult:
    """Under the run lock, read every device's templates into the ledger.

    Raise ConfigError if no `[templates]` key is configured; a terminal that cannot be
    read is reported in the result (its findings are left as they were).
    """
    if syncer.vault is None:
        raise ConfigError("backfill needs a [templates] key in syncd.toml (syncd keys generate)")
    terminals = {n: t for n, t in syncer.targets.items() if isinstance(t, HoldsTemplates)}
    if face_images is None:
        face_images = any(isinstance(c, ClueTargetConfig) for c in syncer.config.targets.values())
    with run_lock(syncer.ledger.db, wait_s=wait_lock_s):
        close_dead_runs(syncer.ledger.db)  # a killed apply's or backfill's row
        run_id = syncer.ledger.start_run(
            kind="backfill", trigger=trigger, dry_run=False, now=syncer.clock()
        )
        people = {k: p.person for k, p in syncer.ledger.load_people().items()}
        runner = _Backfill(syncer, syncer.vault, terminals, people, run_id, face_images)
        try:
            result = stopping.run(runner.run(), what="the backfill")
        except BaseException as exc:  # no run stays "running" (best effort: see run.py)
            with contextlib.suppress(Exception):
                syncer.ledger.finish_run(
                    run_id, outcome=RunOutcome.INTERRUPTED, counts={}, now=syncer.clock(),
                    message=cut(f"{type(exc).__name__}: {exc}"),
                )  # fmt: skip
            raise
        message = "; ".join(f"{t}: {e}" for t, e in sorted(result.errors.items())) or None
        syncer.ledger.finish_run(
            run_id, outcome=result.outcome, counts=result.as_counts(),
            now=syncer.clock(), message=message,
        )  # fmt: skip
    return result


class _Backfill:
    """One backfill run over the devices that hold templates."""

    def __init__(
        self,
        syncer: Syncer,
        vault: TemplateVault,
        terminals: Mapping[str, HoldsTemplates],
        people: Mapping[str, Person],
        run_id: int,
        face_images: bool,
    ) -> None:
        self.syncer = syncer
        self.vault = vault
        self.terminals = terminals
        self.people = people
        self.face_images = face_images
        templates = syncer.config.templates
        prefer = templates.prefer_origin if templates is not None else None
        self.judge = Judge(vault, run_id, prefer, syncer.clock)
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

    async def _terminal(self, name: str, target: HoldsTemplates) -> None:
        async with target.held_templates() as reader:
            self.versions[name] = target.template_version or reader.record_version
            state = ScanState(name, reader.record_version, self.result.per_target[name])
            async for page in reader.pages():
                await self._page(reader, state, page)
            if self.face_images:
                await self._face_images(reader, state)
        now = self.syncer.clock()
        db = self.syncer.ledger.db
        found = {"unknown_enrollment": state.unknown, "duplicate_template": state.refused}
        for kind, seen in found.items():
            sync_findings(db, kind=kind, target=name, seen=seen, now=now)
            self.result.findings[kind] += len(seen)

    async def _page(
        self, reader: TemplateReader, state: ScanState, page: Sequence[HeldTemplates]
    ) -> None:
        writes: list[TemplateWrite] = []
        for held in page:
            uuid = held.person_key
            if uuid not in self.people:
                state.unknown[uuid] = f"{held.what} enrolled on the terminal; unknown to syncd"
                continue
            if any(is_face(c.modality) for c in held.captures):
                state.faces_seen.add(uuid)
            refused_before = state.counts["refused"]
            accepted = [
                w for c in held.captures
                if (w := self.judge.consider(
                    state, Candidate(uuid, c.modality, c.plaintext, c.record_version)
                ))
            ]  # fmt: skip
            if state.counts["refused"] > refused_before:
                # One template matches someone else: the whole enrollment is suspect.
                accepted = self._refuse_all(state, uuid, accepted, "with the other eye")
            if accepted and held.checkable and self._fans_out(uuid, state.target):
                accepted = await self._checked_on_device(reader, state, held, accepted)
            writes.extend(accepted)
        self.judge.commit(state, writes)

    async def _checked_on_device(
        self,
        reader: TemplateReader,
        state: ScanState,
        held: HeldTemplates,
        accepted: list[TemplateWrite],
    ) -> list[TemplateWrite]:
        match = await reader.find_match(held)
        if match is None or match == held.person_key:
            return accepted
        return self._refuse_all(
            state, held.person_key, accepted, f"matches enrolled subject {match}"
        )

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
            for name, config in self.syncer.config.targets.items()
            if isinstance(config, Ef45TargetConfig)
        )

    async def _face_images(self, reader: TemplateReader, state: ScanState) -> None:
        for uuid in sorted(state.faces_seen):
            if (uuid, FACE_IMAGE) in self.judge.meta and uuid not in state.faces_changed:
                continue  # already stored, and no new face since: no need to fetch it
            image = await reader.image(uuid)
            if image is None:
                continue  # no image captured for this person
            candidate = Candidate(uuid, FACE_IMAGE, image.plaintext, image.record_version)
            if write := self.judge.consider(state, candidate):
                self.judge.commit(state, [write])

    def _incompatible(self) -> None:
        """Record, per terminal read, enrollments of another record version than its own."""
        now = self.syncer.clock()
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
                self.syncer.ledger.db, kind="incompatible_template", target=name,
                seen=details, now=now,
            )  # fmt: skip
            self.result.findings["incompatible_template"] += len(details)


def is_face(modality: str) -> bool:
    """Whether `modality` is a device face (whose captured image backfill may fetch)."""
    return face_sub_id(modality) is not None


def failed_terminals(result: BackfillResult) -> TargetError | None:
    """Return the error to raise when some terminal could not be read, else None."""
    if not result.errors:
        return None
    names = ", ".join(sorted(result.errors))
    return TargetError(f"backfill could not read {len(result.errors)} terminal(s): {names}")
