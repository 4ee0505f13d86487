"""`syncd keys rotate`: re-encrypt every template of the ledger under a new key.

One transaction: the wrapped digest key is re-wrapped and every template blob re-sealed
under the new key (read and written in batches, so memory stays bounded); a crash or an
error leaves the ledger entirely under the old key. Digests do not change (the digest
key is only re-wrapped), so nothing is pushed to targets again after a rotation. PINs
sealed under a subkey of the template key (`ledger.pinkey`) are re-sealed in the same
transaction, when the caller passes their keys.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.errors import LedgerError
from syncd.ledger.crypto import TemplateKey, template_aad, unwrap_digest_key, wrap_digest_key
from syncd.ledger.pins import PinKeys, reseal
from syncd.ledger.schema import cursors, enrollments
from syncd.ledger.templates import DIGEST_KEY_CURSOR, chunks

BATCH = 500


def rotate_key(
    engine: sa.Engine,
    old: TemplateKey,
    new: TemplateKey,
    batch: int = BATCH,
    *,
    pins: PinKeys | None = None,
) -> int:
    """Re-encrypt every template from `old` to `new`, and with `pins` every PIN under its
    sealing key; return how many templates were re-encrypted.

    Blobs already under `new` are left alone (a rerun is harmless). Raise LedgerError if
    a blob or the digest key opens under neither key; nothing is then changed.
    """
    if old.key_id == new.key_id:
        raise LedgerError("the new key is the key in use: nothing to rotate")
    with engine.begin() as conn:
        _rewrap_digest_key(conn, old, new)
        people = conn.execute(sa.select(enrollments.c.person_key).distinct()).scalars().all()
        done = 0
        for part in chunks(people, batch):
            done += _reseal(conn, list(part), old, new)
        if pins is not None:
            reseal(conn, pins)
    return done


def _rewrap_digest_key(conn: Connection, old: TemplateKey, new: TemplateKey) -> None:
    wrapped = conn.execute(
        sa.select(cursors.c.value).where(cursors.c.name == DIGEST_KEY_CURSOR)
    ).scalar()
    if wrapped is None:
        return
    try:
        digest_key = unwrap_digest_key(old, str(wrapped))
    except LedgerError:
        digest_key = unwrap_digest_key(new, str(wrapped))  # a rerun: already under new
    conn.execute(
        cursors.update()
        .where(cursors.c.name == DIGEST_KEY_CURSOR)
        .values(value=wrap_digest_key(new, digest_key), updated_at=datetime.now(UTC))
    )


def _reseal(conn: Connection, people: list[str], old: TemplateKey, new: TemplateKey) -> int:
    condition = enrollments.c.person_key.in_(people)
    rows = conn.execute(
        sa.select(enrollments.c.person_key, enrollments.c.modality, enrollments.c.template).where(
            condition
        )
    ).all()
    updates = []
    for row in rows:
        blob = bytes(row.template)
        if new.owns(blob):
            continue
        aad = template_aad(row.person_key, row.modality)
        sealed = new.seal(old.open(blob, aad), aad)
        updates.append({"k": row.person_key, "m": row.modality, "t": sealed})
    if updates:
        conn.execute(
            enrollments.update()
            .where(
                enrollments.c.person_key == sa.bindparam("k"),
                enrollments.c.modality == sa.bindparam("m"),
            )
            .values(template=sa.bindparam("t")),
            updates,
        )
    return len(updates)
