"""The ledger: what syncd knows of people, of what each target holds, and of every run.

`Ledger` is the only code that writes these tables. Each method is one transaction, so
an action's outcome is durable as soon as `record_outcome` returns: a crash at any
instant loses nothing, and the next run recomputes its plan from what is here.
Reads for reports (history, audit, status) live in `queries.py`.

PINs are sealed on their way in and opened on their way out (`pins`): under `pins`, a
`PinKeys` (None: a ledger opened for something else, which refuses any PIN). A SQLite
ledger's files are private to syncd's user (`files`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.errors import ConfigError, ledger_failing
from syncd.ledger import migrate
from syncd.ledger.files import prepare_sqlite_file, sqlite_path
from syncd.ledger.heldload import (
    load_held_tables,
    load_partial_tables,
    load_records,
    unsettled_keys,
)
from syncd.ledger.outcomes import Outcome
from syncd.ledger.peopleindex import PeopleIndex, StoredPerson
from syncd.ledger.pins import (
    PinKeys,
    ensure_sealed,
    open_json,
    person_aad,
    record_aad,
    scrub,
    seal_json,
)
from syncd.ledger.recording import write_outcomes
from syncd.ledger.rows import by_keys, raw_rows
from syncd.ledger.schema import cursors, people, runs, target_records
from syncd.model import (
    Action,
    ActionOutcome,
    Digest,
    HeldRecord,
    Person,
    Record,
    RecordState,
    RunOutcome,
    canonical_json,
    keyed_digest,
)

SCHEMES = ("sqlite", "postgresql")
"""The databases a ledger may live in (a URL's scheme before any "+driver")."""


def check_url(url: str) -> None:
    """Raise ConfigError unless `url` names a supported database (`SCHEMES`)."""
    scheme = url.partition(":")[0].partition("+")[0].lower()
    if scheme not in SCHEMES:
        shown = scheme or url[:20]
        raise ConfigError(
            f"ledger.url: unsupported database {shown!r}: use one of {', '.join(SCHEMES)} "
            "(sqlite:///path/ledger.db, postgresql://user@host/db)"
        )


def create_ledger_engine(url: str) -> sa.Engine:
    """Return an engine for `url`; SQLite gets WAL, a busy timeout and cross-thread use,
    and a database file private to this user (`files.prepare_sqlite_file`).

    Raise ConfigError for a database other than SQLite or PostgreSQL, or a URL SQLAlchemy
    cannot read.
    """
    check_url(url)
    if (path := sqlite_path(url)) is not None:
        prepare_sqlite_file(path)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise ConfigError(f"ledger.url: {type(exc).__name__}: {exc}") from None


def _sqlite_pragmas(dbapi_conn: Any, _record: object) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Deleted content is overwritten, not left in free space (the default of some builds
    # only): an old record or card number does not outlive its row in the file.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


class Ledger:
    """Queries and writes on one ledger database."""

    def __init__(self, engine: sa.Engine, pins: PinKeys | None = None) -> None:
        self.db = engine
        self.pins = pins
        self.active_run: int | None = None
        """The (non-dry) run this process is recording now: it names the terminal locks
        taken meanwhile (`ledger.lockmemo`)."""

    @property
    def record_digest(self) -> Digest:
        """How this ledger's digests of records and people are made: keyed by the PIN key
        (`model.keyed_digest`), so a stored digest never confirms a guessed PIN."""
        return keyed_digest(self.pins.digest_key if self.pins is not None else None)

    @classmethod
    def open(cls, url: str, *, check: bool = True, pins: PinKeys | None = None) -> Ledger:
        """Open the ledger at `url`; with `check`, raise LedgerError unless at the head schema."""
        engine = create_ledger_engine(url)
        if check:
            migrate.check_schema(engine)
        return cls(engine, pins)

    def close(self) -> None:
        """Release every pooled connection."""
        self.db.dispose()

    def _begin(self) -> Any:
        try:
            return self.db.begin()
        except sa.exc.OperationalError as exc:
            raise ledger_failing(exc) from None

    # people -----------------------------------------------------------------------------

    def load_people(self, keys: Iterable[str] | None = None) -> dict[str, StoredPerson]:
        """Return every person the ledger holds, gone ones included, by key (only those
        of `keys` that it holds, when given)."""
        c = people.c
        # Not first_seen/last_seen: unused here, and each timestamp parsed costs (SQLite).
        query = sa.select(c.key, c.data, c.digest, c.source, c.gone_since)
        with self._begin() as conn:
            if keys is None:
                rows = conn.execute(query).all()
            else:
                rows = [row for part in by_keys(conn, query, c.key, keys) for row in part]
        pins = self.pins
        return {
            row.key: StoredPerson(
                None, row.digest, row.source, row.gone_since, stored=(row.key, row.data, pins)
            )
            for row in rows
        }

    def people_index(self) -> PeopleIndex:
        """Return the ledger's people as keys, sources and presence, their data decoded
        on demand (`ledger.peopleindex`): what a reading needs, without loading everyone."""
        c = people.c
        keys: set[str] = set()
        present: dict[str, set[str]] = {}
        query = sa.select(c.key, c.source, c.gone_since.is_(None))
        with self._begin() as conn:
            for rows in raw_rows(conn, query):
                for key, source, is_present in rows:
                    keys.add(key)
                    if is_present:
                        mine = present.get(source)
                        if mine is None:
                            mine = present[source] = set()
                        mine.add(key)
        return PeopleIndex(keys, present, self.load_people, self._window_keys)

    def _window_keys(
        self, starts: tuple[datetime, datetime], ends: tuple[datetime, datetime]
    ) -> set[str]:
        c = people.c
        query = sa.union(
            sa.select(c.key).where(c.valid_from > starts[0], c.valid_from <= starts[1]),
            sa.select(c.key).where(c.valid_until > ends[0], c.valid_until <= ends[1]),
        )
        with self._begin() as conn:
            return set(conn.execute(query).scalars())

    def save_people(
        self,
        source: str,
        seen: Mapping[str, Person],
        gone: frozenset[str],
        now: datetime,
    ) -> None:
        """Upsert the people `source` returned and mark `gone` keys as gone since `now`.

        The first time under a PIN key, every PIN still in clear (an older syncd's) or
        sealed under a previous key is sealed under it too (`pins.ensure_sealed`).
        """
        digest_of = self.record_digest
        with self._begin() as conn:
            resealed = ensure_sealed(conn, self.pins) if self.pins is not None else 0
            known = {
                row.key: (row.digest, row.gone_since)
                for row in conn.execute(
                    sa.select(people.c.key, people.c.digest, people.c.gone_since)
                )
            }
            for key, person in seen.items():
                self._upsert_person(conn, source, person, known.get(key), now, digest_of)
            for key in gone:
                if key in known and known[key][1] is None:
                    conn.execute(people.update().where(people.c.key == key).values(gone_since=now))
        if resealed:
            scrub(self.db)

    def seal_pins(self) -> int:
        """Seal what an older syncd (or a previous PIN key) left, with its digests keyed
        under the current key, before anything is compared (`pins.ensure_sealed`); return
        how many rows were rewritten (0, after one cursor read, when all is sealed)."""
        if self.pins is None:
            return 0
        with self._begin() as conn:
            resealed = ensure_sealed(conn, self.pins)
        if resealed:
            scrub(self.db)
        return resealed

    def _upsert_person(
        self,
        conn: Connection,
        source: str,
        person: Person,
        known: tuple[str, datetime | None] | None,
        now: datetime,
        digest_of: Digest,
    ) -> None:
        data = person.to_json()
        new_digest = digest_of(data)  # of the clear person, keyed: sealing changes none
        # The window's columns change with `data` (its digest), never apart from it.
        window = {"valid_from": person.valid_from, "valid_until": person.valid_until}
        if known is None:
            conn.execute(
                people.insert().values(
                    key=person.key,
                    source=source,
                    digest=new_digest,
                    data=seal_json(data, self.pins, person_aad(person.key)),
                    first_seen=now,
                    last_seen=now,
                    **window,
                )
            )
            return
        values: dict[str, Any] = {"last_seen": now, "gone_since": None}
        if known[0] != new_digest:
            sealed = seal_json(data, self.pins, person_aad(person.key))
            values.update(digest=new_digest, data=sealed, source=source, **window)
        conn.execute(people.update().where(people.c.key == person.key).values(**values))

    # target records -----------------------------------------------------------------------

    def load_held(
        self, target: str | None = None, *, with_records: bool = True
    ) -> dict[str, Mapping[str, HeldRecord]]:
        """Return target → person key → HeldRecord (one target's only, when named).

        Without `with_records`, each HeldRecord's `record` (and last error) is None and
        each target's records come as a `HeldTable`: a plan over a million records needs
        only digests and states, and `load_records` fetches the few records whose field
        changes a report shows.
        """
        if with_records:
            query = sa.select(target_records)
            if target is not None:
                query = query.where(target_records.c.target == target)
            held: dict[str, dict[str, HeldRecord]] = {}
            with self._begin() as conn:
                for row in conn.execute(query):
                    held.setdefault(row.target, {})[row.person_key] = _held_from_row(row, self.pins)
            return dict(held)
        with self._begin() as conn:
            return dict(load_held_tables(conn, target))

    def load_held_of(self, keys: Collection[str]) -> dict[str, Mapping[str, HeldRecord]]:
        """Return target → partial `HeldTable`: every record that is not settled, the
        settled records of the people `keys`, and how many settled records each target
        holds (a plan deciding only those people: `engine.instep`)."""
        with self._begin() as conn:
            return dict(load_partial_tables(conn, keys))

    def unsettled_keys(self) -> set[str]:
        """Return the people with a record that is not settled on some target."""
        with self._begin() as conn:
            return unsettled_keys(conn)

    def load_records(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Record]:
        """Return the records held for the given (target, person key) pairs that have one."""
        with self._begin() as conn:
            return load_records(conn, keys, self.pins)

    def record_outcome(
        self,
        run_id: int,
        action: Action,
        *,
        outcome: ActionOutcome,
        now: datetime,
        remote_id: str | None = None,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> None:
        """Commit one action's outcome: the target record and its audit row, atomically.

        `outcome` is applied, failed or blocked. An applied delete removes the
        target record; an applied create/update/disable stores the record pushed.
        """
        self.record_outcomes(
            [Outcome(run_id, action, outcome, now, remote_id, error, next_attempt_at)]
        )

    def record_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """Commit several outcomes in one transaction, in order, all or none (apply's
        group commit: `engine.writer`)."""
        with self._begin() as conn:
            write_outcomes(conn, outcomes, self.pins)

    # runs and cursors ---------------------------------------------------------------------

    def start_run(self, *, kind: str, trigger: str, dry_run: bool, now: datetime) -> int:
        """Record the start of a run; return its id (a non-dry run becomes `active_run`)."""
        with self._begin() as conn:
            result = conn.execute(
                runs.insert().values(
                    kind=kind,
                    trigger=trigger,
                    dry_run=dry_run,
                    started_at=now,
                    outcome=RunOutcome.RUNNING,
                    counts="{}",
                )
            )
            run_id = int(result.inserted_primary_key[0])
        if not dry_run:
            self.active_run = run_id
        return run_id

    def finish_run(
        self,
        run_id: int,
        *,
        outcome: RunOutcome,
        counts: Mapping[str, Any],
        now: datetime,
        message: str | None = None,
    ) -> None:
        """Record the end of a run with its outcome and counts."""
        if self.active_run == run_id:
            self.active_run = None
        with self._begin() as conn:
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(
                    outcome=outcome,
                    counts=canonical_json(counts),
                    finished_at=now,
                    message=message,
                )
            )

    def last_writing_run(self) -> int | None:
        """Return the id of the newest run that was not a dry run (None: none yet)."""
        query = sa.select(runs.c.id).where(runs.c.dry_run.is_(False))
        with self._begin() as conn:
            found = conn.execute(query.order_by(runs.c.id.desc()).limit(1)).scalar()
        return None if found is None else int(found)

    def get_cursor(self, name: str) -> str | None:
        """Return the stored position `name`, or None."""
        with self._begin() as conn:
            value = conn.execute(sa.select(cursors.c.value).where(cursors.c.name == name)).scalar()
        return None if value is None else str(value)

    def set_cursor(self, name: str, value: str, now: datetime) -> None:
        """Store the position `name` (call only after the run that used it is committed)."""
        with self._begin() as conn:
            updated = conn.execute(
                cursors.update().where(cursors.c.name == name).values(value=value, updated_at=now)
            )
            if updated.rowcount == 0:
                conn.execute(cursors.insert().values(name=name, value=value, updated_at=now))


def _held_from_row(row: Any, pins: PinKeys | None) -> HeldRecord:
    aad = record_aad(row.target, row.person_key)
    return HeldRecord(
        target=row.target,
        person_key=row.person_key,
        state=RecordState(row.state),
        digest=row.digest,
        record=open_json(row.record, pins, aad) if row.record else None,
        remote_id=row.remote_id,
        created_by_syncd=row.created_by_syncd,
        disabled_since=row.disabled_since,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
    )
