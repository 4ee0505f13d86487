"""Backfill's decisions on each observed template: unchanged, refused, superseded, stored.

`Judge` holds the ledger's template metadata (digests, never bytes) for the whole run
and decides on one `Candidate` at a time (see `engine.backfill` for the rules). Writes
are collected per page and committed with `commit`, one transaction per page.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from syncd.ledger.templates import StoredTemplate, TemplateVault, TemplateWrite, digest_owners


@dataclass(frozen=True, slots=True)
class Candidate:
    """One template observed on a terminal for a person the ledger knows."""

    person_key: str
    modality: str
    plaintext: bytes
    record_version: int

    def __repr__(self) -> str:  # the bytes never reach a log or a traceback
        return f"Candidate({self.person_key!r}, {self.modality!r})"


@dataclass
class ScanState:
    """What one terminal's scan found so far."""

    target: str
    version: int
    counts: Counter[str]
    unknown: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    faces_seen: set[str] = field(default_factory=set)
    faces_changed: set[str] = field(default_factory=set)
    touched: list[tuple[str, str]] = field(default_factory=list)


class Judge:
    """Decides on observed templates against the ledger, and commits the winners."""

    def __init__(
        self,
        vault: TemplateVault,
        run_id: int,
        prefer_origin: str | None,
        clock: Callable[[], datetime],
    ) -> None:
        self.vault = vault
        self.run_id = run_id
        self.prefer_origin = prefer_origin
        self.clock = clock
        self.meta: dict[tuple[str, str], StoredTemplate] = vault.metadata()
        self.owners = digest_owners(self.meta)
        self.audited = vault.audited_people()

    def consider(self, state: ScanState, candidate: Candidate) -> TemplateWrite | None:
        """Return the write that stores `candidate`, or None if it is not to be stored."""
        uuid, modality = candidate.person_key, candidate.modality
        state.counts["seen"] += 1
        digest = self.vault.digest(candidate.plaintext)
        stored = self.meta.get((uuid, modality))
        if stored is not None and stored.digest == digest:
            state.counts["unchanged"] += 1
            state.touched.append((uuid, modality))
            return None
        owner = self.owners.get(digest)
        if owner is not None and owner != uuid:
            self.refuse(state, uuid, digest, f"{modality} matches the template of {owner}")
            return None
        sighting = self.vault.sighting(uuid, digest) if uuid in self.audited else None
        if sighting is not None and sighting.refused:
            self.refuse(state, uuid, digest, f"{modality} was refused before (duplicate)")
            return None
        first_seen = sighting.first_seen if sighting is not None else self.clock()
        if stored is not None and not self._wins(state.target, first_seen, stored):
            state.counts["superseded"] += 1
            if sighting is None:
                self._note(uuid, state.target, digest, "superseded")
            return None
        return TemplateWrite(
            person_key=uuid,
            modality=modality,
            plaintext=candidate.plaintext,
            digest=digest,
            record_version=candidate.record_version,
            origin_target=state.target,
            captured_at=first_seen,
            before_digest=stored.digest if stored is not None else None,
        )

    def _wins(self, origin: str, first_seen: datetime, stored: StoredTemplate) -> bool:
        preferred = self.prefer_origin
        mine = (origin == preferred, first_seen)
        theirs = (stored.origin_target == preferred, stored.captured_at)
        return mine > theirs

    def refuse(self, state: ScanState, uuid: str, digest: str, detail: str) -> None:
        """Count and report a refused template (audited once per person and digest)."""
        state.counts["refused"] += 1
        previous = state.refused.get(uuid)
        state.refused[uuid] = f"{previous}; {detail}" if previous else detail
        sighting = self.vault.sighting(uuid, digest) if uuid in self.audited else None
        if sighting is None or not sighting.refused:
            self._note(uuid, state.target, digest, "refused")

    def _note(self, uuid: str, target: str, digest: str, outcome: str) -> None:
        self.vault.note(self.run_id, uuid, target, digest, outcome, self.clock())
        self.audited.add(uuid)

    def commit(self, state: ScanState, writes: Sequence[TemplateWrite]) -> None:
        """Store `writes` and touch the unchanged templates seen, in one transaction."""
        if not writes and not state.touched:
            return
        self.vault.write(self.run_id, writes, state.touched, self.clock())
        state.touched = []
        for write in writes:
            key = (write.person_key, write.modality)
            state.counts["changed" if write.before_digest else "new"] += 1
            if write.before_digest and self.owners.get(write.before_digest) == write.person_key:
                del self.owners[write.before_digest]
            self.owners[write.digest] = write.person_key
            self.audited.add(write.person_key)
            self.meta[key] = StoredTemplate(
                write.digest, write.record_version, write.origin_target, write.captured_at
            )
            if write.modality.startswith("face:"):
                state.faces_changed.add(write.person_key)
