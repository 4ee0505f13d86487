"""The ledger's `enrollments`: templates encrypted at rest, their digests and history.

`TemplateVault` is the only code that reads or writes template bytes in the ledger.
Plans see `Enrollment`s (digests only); apply paths get bytes through `load_template`,
which decrypts one template at a time. Each write is one transaction together with its
audit rows in `changes` (op "enroll", digests only, never bytes).

The first time a (person, digest) is observed it gets an "enroll" audit row: outcome
"applied" (it became the ledger's template), "superseded" (an older or less preferred
template than the ledger's) or "refused" (it matches another person's). That history is
how backfill tells a terminal still holding an old template (first seen long ago: it
loses) from a fresh re-enrollment (first seen now: it wins).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from syncd.errors import ConfigError, LedgerError
from syncd.ledger.crypto import (
    TemplateDigester,
    TemplateKey,
    new_digest_key,
    template_aad,
    unwrap_digest_key,
    wrap_digest_key,
)
from syncd.ledger.schema import changes, cursors, enrollments
from syncd.model import Enrollment

DIGEST_KEY_CURSOR = "crypto:digest_key"
ENROLL_OP = "enroll"
_UPDATED = ("template", "digest", "record_version", "origin_target", "captured_at", "seen_at")


@dataclass(frozen=True, slots=True)
class StoredTemplate:
    """What the ledger holds for one (person, modality), without the bytes."""

    digest: str
    record_version: int
    origin_target: str
    captured_at: datetime


@dataclass(frozen=True, slots=True)
class TemplateWrite:
    """One template to store: it replaces `before_digest` (None: the first of its kind)."""

    person_key: str
    modality: str
    plaintext: bytes
    digest: str
    record_version: int
    origin_target: str
    captured_at: datetime
    before_digest: str | None

    def __repr__(self) -> str:  # the bytes never reach a log or a traceback
        return f"TemplateWrite({self.person_key!r}, {self.modality!r}, digest={self.digest})"


@dataclass(frozen=True, slots=True)
class Sighting:
    """The earliest audit row of one (person, digest): when first seen, and its outcome."""

    first_seen: datetime
    refused: bool


def count_enrollments(engine: sa.Engine) -> int:
    """Return how many templates the ledger holds."""
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(enrollments)).scalar_one())


class TemplateVault:
    """Encrypted templates of one ledger, under one key. Use `open` to build one."""

    def __init__(self, engine: sa.Engine, key: TemplateKey, digest_key: bytes | None) -> None:
        self.engine = engine
        self.key = key
        self._digester = TemplateDigester(digest_key) if digest_key is not None else None

    def __repr__(self) -> str:
        return f"TemplateVault({self.key!r})"

    @classmethod
    def open(cls, engine: sa.Engine, key: TemplateKey) -> TemplateVault:
        """Return the vault; raise LedgerError if the ledger's templates need another key.

        Checks the wrapped digest key and one stored blob: both must name `key`'s id and
        open under it.
        """
        with engine.connect() as conn:
            wrapped = conn.execute(
                sa.select(cursors.c.value).where(cursors.c.name == DIGEST_KEY_CURSOR)
            ).scalar()
            sample = conn.execute(
                sa.select(
                    enrollments.c.person_key, enrollments.c.modality, enrollments.c.template
                ).limit(1)
            ).first()
        digest_key = unwrap_digest_key(key, str(wrapped)) if wrapped is not None else None
        if sample is not None:
            if digest_key is None:
                raise LedgerError("the ledger holds templates but no digest key: it is damaged")
            key.open(bytes(sample.template), template_aad(sample.person_key, sample.modality))
        return cls(engine, key, digest_key)

    # -- digests -------------------------------------------------------------------------

    def digest(self, plaintext: bytes) -> str:
        """Return the keyed digest of `plaintext` (making the ledger's digest key if none)."""
        if self._digester is None:
            self._digester = TemplateDigester(self._ensure_digest_key())
        return self._digester(plaintext)

    def _ensure_digest_key(self) -> bytes:
        with self.engine.begin() as conn:
            wrapped = conn.execute(
                sa.select(cursors.c.value).where(cursors.c.name == DIGEST_KEY_CURSOR)
            ).scalar()
            if wrapped is not None:
                return unwrap_digest_key(self.key, str(wrapped))
            fresh = new_digest_key()
            conn.execute(
                cursors.insert().values(
                    name=DIGEST_KEY_CURSOR,
                    value=wrap_digest_key(self.key, fresh),
                    updated_at=datetime.now(UTC),
                )
            )
            return fresh

    # -- reads ---------------------------------------------------------------------------

    def metadata(self) -> dict[tuple[str, str], StoredTemplate]:
        """Return (person key, modality) → what is stored, without the bytes."""
        columns = (
            enrollments.c.person_key,
            enrollments.c.modality,
            enrollments.c.digest,
            enrollments.c.record_version,
            enrollments.c.origin_target,
            enrollments.c.captured_at,
        )
        with self.engine.connect() as conn:
            return {
                (r.person_key, r.modality): StoredTemplate(
                    r.digest, r.record_version, r.origin_target, r.captured_at
                )
                for r in conn.execute(sa.select(*columns))
            }

    def enrollments(self) -> dict[str, tuple[Enrollment, ...]]:
        """Return person key → that person's enrollments (digests only), by modality."""
        found: dict[str, list[Enrollment]] = {}
        for (person_key, modality), meta in sorted(self.metadata().items()):
            found.setdefault(person_key, []).append(
                Enrollment(
                    person_key=person_key,
                    modality=modality,
                    digest=meta.digest,
                    record_version=meta.record_version,
                    origin_target=meta.origin_target,
                    captured_at=meta.captured_at,
                )
            )
        return {key: tuple(items) for key, items in found.items()}

    def load(self, person_key: str, modality: str, *, expect_digest: str | None = None) -> bytes:
        """Return the decrypted template of (person, modality).

        Raise LedgerError if there is none, if its digest is not `expect_digest` (the
        ledger changed since the plan), or if it does not open under the key.
        """
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(enrollments.c.template, enrollments.c.digest).where(
                    enrollments.c.person_key == person_key, enrollments.c.modality == modality
                )
            ).first()
        if row is None:
            raise LedgerError(f"no {modality} template in the ledger for {person_key}")
        if expect_digest is not None and row.digest != expect_digest:
            raise LedgerError(
                f"the {modality} template of {person_key} changed since the plan was made"
            )
        return self.key.open(bytes(row.template), template_aad(person_key, modality))

    def audited_people(self) -> set[str]:
        """Return the people with any "enroll" audit row (the others have no history)."""
        query = sa.select(changes.c.person_key).where(changes.c.op == ENROLL_OP).distinct()
        with self.engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def sighting(self, person_key: str, digest: str) -> Sighting | None:
        """Return when (person, digest) was first observed and whether it was refused."""
        query = (
            sa.select(changes.c.at, changes.c.outcome)
            .where(
                changes.c.person_key == person_key,
                changes.c.op == ENROLL_OP,
                changes.c.after_digest == digest,
            )
            .order_by(changes.c.at)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return None
        return Sighting(rows[0].at, any(r.outcome == "refused" for r in rows))

    # -- writes --------------------------------------------------------------------------

    def write(
        self,
        run_id: int,
        writes: Sequence[TemplateWrite],
        touched: Iterable[tuple[str, str]],
        now: datetime,
    ) -> None:
        """Store `writes` (encrypted) with their audit rows and mark `touched` as seen now.

        A write whose `before_digest` is None is inserted, the others update their row.
        One transaction: a crash leaves either all of it or none.
        """
        rows = [self._row(write, now) for write in writes]
        audit = [
            _audit_row(
                run_id, w.person_key, w.origin_target, now, "applied", w.digest, w.before_digest
            )
            for w in writes
        ]
        with self.engine.begin() as conn:
            # Executemany per kind of statement: per-row statements cost more than the I/O.
            fresh = [r for r, w in zip(rows, writes, strict=True) if w.before_digest is None]
            known = [r for r, w in zip(rows, writes, strict=True) if w.before_digest is not None]
            if fresh:
                conn.execute(enrollments.insert(), fresh)
            if known:
                columns = _UPDATED
                update = _by_key(enrollments.update()).values(
                    {name: sa.bindparam(f"new_{name}") for name in columns}
                )
                params = [
                    {"k": r["person_key"], "m": r["modality"]}
                    | {f"new_{name}": r[name] for name in columns}
                    for r in known
                ]
                conn.execute(update, params)
            if audit:
                conn.execute(changes.insert(), audit)
            seen = [{"k": k, "m": m, "now": now} for k, m in touched]
            if seen:
                conn.execute(
                    _by_key(enrollments.update()).values(seen_at=sa.bindparam("now")), seen
                )

    def note(
        self, run_id: int, person_key: str, target: str, digest: str, outcome: str, now: datetime
    ) -> None:
        """Audit one observed template that was not stored ("superseded" or "refused")."""
        with self.engine.begin() as conn:
            conn.execute(
                changes.insert(), [_audit_row(run_id, person_key, target, now, outcome, digest)]
            )

    def _row(self, write: TemplateWrite, now: datetime) -> dict[str, Any]:
        aad = template_aad(write.person_key, write.modality)
        return {
            "person_key": write.person_key,
            "modality": write.modality,
            "template": self.key.seal(write.plaintext, aad),
            "digest": write.digest,
            "record_version": write.record_version,
            "origin_target": write.origin_target,
            "captured_at": write.captured_at,
            "seen_at": now,
        }


def _by_key(statement: sa.Update) -> sa.Update:
    return statement.where(
        enrollments.c.person_key == sa.bindparam("k"),
        enrollments.c.modality == sa.bindparam("m"),
    )


def _audit_row(
    run_id: int,
    person_key: str,
    target: str,
    now: datetime,
    outcome: str,
    after: str,
    before: str | None = None,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "target": target,
        "person_key": person_key,
        "op": ENROLL_OP,
        "outcome": outcome,
        "before_digest": before,
        "after_digest": after,
        "error": None,
        "at": now,
    }


def load_template(
    source: Any, person_key: str, modality: str, *, expect_digest: str | None = None
) -> bytes:
    """Given a `TemplateVault`, or anything with a `vault` attribute holding one (the
    engine), return the decrypted template of (person, modality).

    Raise ConfigError if no template key is configured; LedgerError as `TemplateVault.load`.
    """
    vault = source if isinstance(source, TemplateVault) else getattr(source, "vault", None)
    if not isinstance(vault, TemplateVault):
        raise ConfigError("templates need a [templates] key in syncd.toml")
    return vault.load(person_key, modality, expect_digest=expect_digest)


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Yield `items` in slices of `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def digest_owners(meta: Mapping[tuple[str, str], StoredTemplate]) -> dict[str, str]:
    """Return digest → the person whose template it is (for exact-duplicate checks)."""
    return {stored.digest: person for (person, _), stored in meta.items()}
