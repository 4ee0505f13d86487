"""PINs at rest: sealed inside the JSON of `people.data` and `target_records.record`.

A PIN is the one secret a person's data and a target's record carry as plain text (a
template travels as a digest). In the ledger its value becomes

    "pin": {"sealed": "<base64 of a crypto blob>"}

(AES-256-GCM, `crypto.TemplateKey.seal`: magic, key id, random nonce, ciphertext), with
associated data binding it to its row and field — `people` + person key, or
`target_records` + target + person key — so a sealed PIN copied onto another row fails
to open. An empty PIN stays "" (there is nothing to hide). A PIN that is still a string
was written by an older syncd: it reads as it is, and the next write of its row, or
`reseal` (`syncd db upgrade`; the first apply under a sealing key, see `ensure_sealed`),
seals it.

Digests are the engine's, computed on the clear person and record, so sealing changes
no digest and pushes nothing again. A blob is randomized: ciphertexts are never compared.
A digest of a row holding a PIN is keyed (`model.keyed_digest` under
`PinKeys.digest_key`): the PIN enters it as an HMAC, so a copy of the ledger cannot
confirm a guessed PIN against it. The cursor `crypto:digests` names the key id the
digests were last all keyed under; `reseal` keys them again (and, the first time, the
audit's plain digests) when it does not name the sealing key.

`PinKeys` seals under one key and opens under any of several (the previous key while a
site moves to another: `ledger.pinkey`). The cursor `crypto:pins` names the key id every
PIN of the ledger was last sealed under (hex): a cheap check that the configured keys
fit the ledger, and the mark that no clear PIN is left.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.errors import LedgerError
from syncd.ledger.crypto import TemplateKey, blob_key_id
from syncd.ledger.schema import changes, cursors, people, target_records
from syncd.model import canonical_json, keyed_digest

log = logging.getLogger(__name__)

PIN_FIELD = "pin"
SEALED = "sealed"
CURSOR = "crypto:pins"
DIGESTS_CURSOR = "crypto:digests"
DIGEST_LABEL = b"syncd record digest v1"
_BATCH = 500
NO_KEY = "a PIN must be encrypted in the ledger but this ledger was opened without a PIN key"


def person_aad(person_key: str) -> bytes:
    """Return the associated data binding a sealed PIN to its `people` row."""
    return f"pin\x00people\x00{person_key}".encode()


def record_aad(target: str, person_key: str) -> bytes:
    """Return the associated data binding a sealed PIN to its `target_records` row."""
    return f"pin\x00target_records\x00{target}\x00{person_key}".encode()


class PinKeys:
    """The key PINs are sealed under, and every key they may be opened with.

    `where` says where the sealing key comes from, for messages; reprs never show a key.
    """

    def __init__(
        self, seal: TemplateKey, others: Iterable[TemplateKey] = (), where: str = ""
    ) -> None:
        self.sealing = seal
        self._keys = {key.key_id: key for key in (*others, seal)}
        self.where = where or "the PIN key"

    def __repr__(self) -> str:
        return f"PinKeys(id={self.key_id.hex()}, known={sorted(k.hex() for k in self._keys)})"

    @functools.cached_property
    def digest_key(self) -> bytes:
        """The key of the ledger's record digests (`model.keyed_digest`), derived from the
        sealing key: a stored digest never confirms a guessed PIN without it."""
        return self.sealing.hmac_key(DIGEST_LABEL)

    @property
    def key_id(self) -> bytes:
        """The id of the key PINs are sealed under."""
        return self.sealing.key_id

    def knows(self, key_id: bytes) -> bool:
        """Return True if a PIN sealed under `key_id` opens with one of these keys."""
        return key_id in self._keys

    def seal(self, pin: object, aad: bytes) -> dict[str, str]:
        """Return the sealed form of `pin` (any JSON value; a PIN is text) bound to `aad`,
        under a fresh nonce each time."""
        blob = self.sealing.seal(canonical_json(pin).encode("utf-8"), aad)
        return {SEALED: base64.b64encode(blob).decode("ascii")}

    def is_current(self, value: object) -> bool:
        """Return True if `value` is a PIN sealed under the sealing key."""
        return isinstance(value, dict) and _blob_id(value) == self.key_id

    def open(self, value: object, aad: bytes) -> Any:
        """Return the clear PIN of a stored value (a clear one is returned as it is).

        Raise LedgerError if it was sealed under none of these keys (naming the ids), is
        damaged, or fails authentication (tampered with, or moved to another row).
        """
        if not isinstance(value, dict):
            return value
        found = _blob_id(value)
        if found is None:
            raise LedgerError("a PIN in the ledger is damaged (not a syncd sealed value)")
        key = self._keys.get(found)
        if key is None:
            raise LedgerError(wrong_key_message(found, self))
        try:
            return json.loads(key.open(_blob(value), aad))
        except (LedgerError, ValueError):
            raise LedgerError(
                "a PIN in the ledger failed authentication (tampered with, or moved to "
                "another row); it cannot be used"
            ) from None


def wrong_key_message(found: bytes, keys: PinKeys) -> str:
    """Return the message for PINs sealed under key id `found`, which `keys` cannot open."""
    return (
        f"wrong PIN key: the ledger's PINs are encrypted with key id {found.hex()}, "
        f"{keys.where} has id {keys.key_id.hex()}: configure the key they were encrypted "
        "with ([ledger] pin_key, or the [templates] key it was derived from), or restore "
        "the pin.key file backed up with the ledger"
    )


def _empty(pin: object) -> bool:
    return pin is None or pin == ""


def _blob(value: object) -> bytes:
    text = value.get(SEALED) if isinstance(value, dict) else None
    try:
        return base64.b64decode(str(text), validate=True) if text else b""
    except (binascii.Error, ValueError):
        return b""


def _blob_id(value: object) -> bytes | None:
    try:
        return blob_key_id(_blob(value))
    except LedgerError:
        return None


def seal_json(value: Mapping[str, Any], keys: PinKeys | None, aad: bytes) -> str:
    """Return the canonical JSON text of `value` (a person's data or a record) to store,
    its PIN sealed. Raise LedgerError if it has a PIN and there is no key."""
    pin = value.get(PIN_FIELD)
    if _empty(pin) or isinstance(pin, dict):  # dict: sealed already (never in a plan)
        return canonical_json(value)
    if keys is None:
        raise LedgerError(NO_KEY)
    return canonical_json({**value, PIN_FIELD: keys.seal(pin, aad)})


def open_json(text: str, keys: PinKeys | None, aad: bytes) -> dict[str, Any]:
    """Return the stored JSON `text` parsed, its PIN in clear. Raise LedgerError if the
    PIN is sealed and there is no key, or it does not open (`PinKeys.open`)."""
    data: dict[str, Any] = json.loads(text)
    pin = data.get(PIN_FIELD)
    if isinstance(pin, dict):
        if keys is None:
            raise LedgerError(NO_KEY)
        data[PIN_FIELD] = keys.open(pin, aad)
    return data


# -- sealing what is left -----------------------------------------------------------------


def _with_pin(column: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
    """Rows whose JSON may hold a non-empty PIN (canonical JSON has no spaces; a quote
    inside a string value is escaped, so `"pin":` is a key). Python decides the rest."""
    empty = sa.or_(column.like('%"pin":""%'), column.like('%"pin":null%'))
    return sa.and_(column.like('%"pin":%'), sa.not_(empty))


def clear_pins(conn: Connection) -> int:
    """Return how many rows of `people` and `target_records` may hold a PIN in clear."""
    total = 0
    for column in (people.c.data, target_records.c.record):
        clear = sa.and_(_with_pin(column), column.not_like('%"pin":{%'))
        total += int(conn.execute(sa.select(sa.func.count()).where(clear)).scalar_one())
    return total


def sealed_under(conn: Connection, cursor: str = CURSOR) -> bytes | None:
    """Return the key id the ledger's PINs were last all sealed under (None: never); with
    `cursor` DIGESTS_CURSOR, the key id its record digests were last all keyed under."""
    value = conn.execute(sa.select(cursors.c.value).where(cursors.c.name == cursor)).scalar()
    try:
        return bytes.fromhex(str(value)) if value else None
    except ValueError:
        raise LedgerError(f"the ledger's cursor {cursor} is damaged") from None


def ensure_sealed(conn: Connection, keys: PinKeys) -> int:
    """Seal what is left and key the digests (`reseal`) unless the ledger is marked as
    sealed and keyed under `keys`' sealing key; return how many rows were rewritten."""
    if sealed_under(conn) == keys.key_id == sealed_under(conn, DIGESTS_CURSOR):
        return 0
    return reseal(conn, keys)


def reseal(conn: Connection, keys: PinKeys) -> int:
    """Seal under the sealing key every PIN that is not (clear, or under another of
    `keys`); mark the ledger (cursor); return how many rows were rewritten.

    The digest of each row holding a PIN is made again, keyed under the sealing key's
    digest key (`PinKeys.digest_key`), so the next plan finds every record in step. Rows
    without a PIN keep theirs (a keyed digest of them is the plain one). The first time
    (no DIGESTS_CURSOR: an older syncd's plain digests), the audit digests are keyed too.

    Idempotent: a PIN already sealed under the sealing key is left as it is. Raise
    LedgerError, changing nothing (the caller's transaction), if a PIN does not open.
    """
    keyed = sealed_under(conn, DIGESTS_CURSOR)
    rekey = keyed != keys.key_id  # digests of rows sealed already must be made again
    done = _reseal_people(conn, keys, rekey)
    targets = conn.execute(sa.select(target_records.c.target).distinct()).scalars().all()
    for target in targets:
        done += _reseal_records(conn, keys, target, rekey)
    if keyed is None:
        _key_audit_digests(conn, keys)
    _mark(conn, keys, CURSOR)
    _mark(conn, keys, DIGESTS_CURSOR)
    return done


def _key_audit_digests(conn: Connection, keys: PinKeys) -> None:
    """Replace each audit digest an older syncd wrote (plain SHA-256 of a record that may
    hold a PIN) by a keyed one ("h" + HMAC): history still compares with itself, but no
    longer confirms a guessed PIN. Runs once, with the first sealing of the ledger."""
    key = keys.digest_key
    for column in (changes.c.before_digest, changes.c.after_digest):
        found = conn.execute(sa.select(column).where(column.is_not(None)).distinct()).scalars()
        mapping = [{"old": d, "new": _keyed_hex(key, d)} for d in found if not d.startswith("h")]
        if mapping:
            update = changes.update().where(column == sa.bindparam("old"))
            conn.execute(update.values({column.name: sa.bindparam("new")}), mapping)


def _keyed_hex(key: bytes, value: str) -> str:
    return "h" + hmac.new(key, value.encode("ascii"), hashlib.sha256).hexdigest()[:63]


def _reseal_people(conn: Connection, keys: PinKeys, rekey: bool) -> int:
    c, last, done = people.c, "", 0
    update = people.update().where(c.key == sa.bindparam("k"))
    update = update.values(data=sa.bindparam("v"), digest=sa.bindparam("d"))
    digest_of = keyed_digest(keys.digest_key)
    while True:
        query = sa.select(c.key, c.data).where(c.key > last, _with_pin(c.data))
        rows = conn.execute(query.order_by(c.key).limit(_BATCH)).all()
        if not rows:
            return done
        changed = [
            {"k": row.key, "v": found[0], "d": digest_of(found[1])}
            for row in rows
            if (found := _resealed(row.data, keys, person_aad(row.key), rekey)) is not None
        ]
        if changed:
            conn.execute(update, changed)
        done, last = done + len(changed), rows[-1].key


def _reseal_records(conn: Connection, keys: PinKeys, target: str, rekey: bool) -> int:
    c, last, done = target_records.c, "", 0
    update = (
        target_records.update()
        .where(c.target == target, c.person_key == sa.bindparam("k"))
        .values(record=sa.bindparam("v"), digest=sa.bindparam("d"))
    )
    digest_of = keyed_digest(keys.digest_key)
    while True:
        query = sa.select(c.person_key, c.record, c.digest).where(
            c.target == target, c.person_key > last, _with_pin(c.record)
        )
        rows = conn.execute(query.order_by(c.person_key).limit(_BATCH)).all()
        if not rows:
            return done
        # The digest is of the record held (None: nothing held): keyed under the key now.
        changed = [
            {"k": row.person_key, "v": found[0], "d": row.digest and digest_of(found[1])}
            for row in rows
            if (found := _resealed(row.record, keys, record_aad(target, row.person_key), rekey))
            is not None
        ]
        if changed:
            conn.execute(update, changed)
        done, last = done + len(changed), rows[-1].person_key


def _resealed(
    text: str, keys: PinKeys, aad: bytes, rekey: bool
) -> tuple[str, dict[str, Any]] | None:
    """Return the row's JSON with its PIN sealed under the sealing key, and the clear
    data; None if it has no PIN, or it is sealed so already and not `rekey`."""
    data = json.loads(text)
    pin = data.get(PIN_FIELD) if isinstance(data, dict) else None
    if _empty(pin):
        return None
    if keys.is_current(pin):
        return (text, {**data, PIN_FIELD: keys.open(pin, aad)}) if rekey else None
    clear = {**data, PIN_FIELD: keys.open(pin, aad)}
    return canonical_json({**data, PIN_FIELD: keys.seal(clear[PIN_FIELD], aad)}), clear


def _mark(conn: Connection, keys: PinKeys, cursor: str) -> None:
    values = {"value": keys.key_id.hex(), "updated_at": datetime.now(UTC)}
    updated = conn.execute(cursors.update().where(cursors.c.name == cursor).values(values))
    if updated.rowcount == 0:
        conn.execute(cursors.insert().values(name=cursor, **values))


def scrub(engine: sa.Engine) -> None:
    """After clear PINs were sealed, leave no copy of them in a SQLite ledger's files:
    VACUUM rewrites the database without its free pages (old row images), and a
    truncating checkpoint empties the WAL. Best effort (a reader may hold the WAL): a
    failure is logged. PostgreSQL keeps old row versions until its own VACUUM (README).
    """
    if engine.dialect.name != "sqlite":
        return
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    except sa.exc.SQLAlchemyError as exc:
        log.warning(
            "PINs sealed, but old copies may remain in the SQLite files until "
            "`sqlite3 LEDGER 'VACUUM'` runs: %s",
            type(exc).__name__,
        )
