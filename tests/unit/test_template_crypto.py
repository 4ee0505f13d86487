"""Templates at rest (AES-GCM blobs, key ids, keyed digests), EF-45 render of templates,
rotation and retention on a plain SQLite ledger."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from syncd.config import Ef45TargetConfig
from syncd.errors import ConfigError, LedgerError
from syncd.ledger import migrate
from syncd.ledger.crypto import TemplateKey, generate_key_text, template_aad
from syncd.ledger.purge import purge_gone
from syncd.ledger.rotate import rotate_key
from syncd.ledger.schema import enrollments, people, target_records
from syncd.ledger.store import Ledger, create_ledger_engine
from syncd.ledger.templates import TemplateVault, TemplateWrite
from syncd.model import Enrollment, Person
from syncd.targets.ef45.target import Ef45Target

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SECRET = b"left-iris-template-bytes-0123456789"


def key() -> TemplateKey:
    return TemplateKey.from_text(generate_key_text())


def test_blob_round_trip_is_bound_to_its_row_and_key() -> None:
    k = key()
    blob = k.seal(SECRET, template_aad("p1", "left_iris"))
    assert SECRET not in blob and blob.startswith(b"sy1")
    assert k.open(blob, template_aad("p1", "left_iris")) == SECRET
    with pytest.raises(LedgerError, match="failed authentication"):
        k.open(blob, template_aad("p2", "left_iris"))
    with pytest.raises(LedgerError, match=r"wrong template key.*key id"):
        key().open(blob, template_aad("p1", "left_iris"))


def test_bad_key_text_is_refused_without_echo() -> None:
    with pytest.raises(ConfigError, match="32 bytes") as info:
        TemplateKey.from_text("c2hvcnQ=")
    assert "c2hvcnQ" not in str(info.value)
    with pytest.raises(ConfigError, match="not base64"):
        TemplateKey.from_text("not base64 at all!")
    assert "TemplateKey(id=" in repr(key())


@pytest.fixture
def db(tmp_path: Path) -> sa.Engine:
    engine = create_ledger_engine(f"sqlite:///{tmp_path}/ledger.db")
    migrate.upgrade(engine)
    return engine


def _store(vault: TemplateVault, person: str, plaintext: bytes) -> str:
    digest = vault.digest(plaintext)
    write = TemplateWrite(person, "left_iris", plaintext, digest, 8976, "a", NOW, None)
    with vault.engine.begin() as conn:
        run = conn.exec_driver_sql(
            'INSERT INTO runs (kind, "trigger", dry_run, started_at, outcome, counts) '
            "VALUES ('backfill', 'test', 0, '2026-11-22 10:00:00', 'ok', '{}')"
        ).lastrowid
    vault.write(int(run or 1), [write], [], NOW)
    return digest


def test_digest_is_keyed_and_survives_rotation(db: sa.Engine) -> None:
    old, new = key(), key()
    vault = TemplateVault.open(db, old)
    digest = _store(vault, "p1", SECRET)
    assert digest == vault.digest(SECRET) and len(digest) == 64
    assert digest != hashlib.sha256(SECRET).hexdigest()
    assert rotate_key(db, old, new) == 1
    with pytest.raises(LedgerError, match="wrong template key"):
        TemplateVault.open(db, old)
    rotated = TemplateVault.open(db, new)
    assert rotated.load("p1", "left_iris", expect_digest=digest) == SECRET
    assert rotated.digest(SECRET) == digest  # no re-push after a rotation
    with pytest.raises(LedgerError, match="changed since the plan"):
        rotated.load("p1", "left_iris", expect_digest="0" * 64)


def test_purge_takes_templates_only_with_their_person(db: sa.Engine) -> None:
    vault = TemplateVault.open(db, key())
    for person in ("gone-long", "gone-held", "gone-recent", "present"):
        _store(vault, person, person.encode() * 4)
    gone = {"gone-long": NOW - timedelta(days=40), "gone-held": NOW - timedelta(days=40),
            "gone-recent": NOW - timedelta(days=2), "present": None}  # fmt: skip
    with db.begin() as conn:
        for person, since in gone.items():
            conn.execute(people.insert().values(
                key=person, source="hr", digest="d", data="{}", first_seen=NOW,
                last_seen=NOW, gone_since=since,
            ))  # fmt: skip
        conn.execute(target_records.insert().values(
            target="a", person_key="gone-held", state="ok", created_by_syncd=True,
            attempts=0, updated_at=NOW,
        ))  # fmt: skip
    run_id = Ledger(db).start_run(kind="apply", trigger="test", dry_run=False, now=NOW)
    purged = purge_gone(db, delete_after=timedelta(days=30), now=NOW, run_id=run_id)
    assert (purged.people, purged.templates) == (1, 1)
    with db.connect() as conn:
        left = set(conn.execute(sa.select(enrollments.c.person_key)).scalars())
    assert left == {"gone-held", "gone-recent", "present"}


def _enrollment(modality: str, digest: str, version: int = 8976, minute: int = 0) -> Enrollment:
    return Enrollment("p1", modality, digest, version, "a", NOW + timedelta(minutes=minute))


def test_render_adds_template_digests_of_the_terminal_version_only() -> None:
    person = Person(key="p1", first_name="Ada", last_name="L")
    plain = Ef45Target("t", Ef45TargetConfig(type="ef45", url="http://x"))
    assert "faces" not in plain.render(person, ())
    found = [
        _enrollment("left_iris", "L" * 64),
        _enrollment("face:1", "F" * 64),
        _enrollment("right_iris", "R" * 64, version=9000, minute=-5),
        _enrollment("face_image", "I" * 64),
    ]
    record = plain.render(person, found)
    assert record["left_eye_template"] == "L" * 64 and "right_eye_template" not in record
    assert record["faces"] == [{"sub_id": 1, "digest": "F" * 64}]
    assert record["template_version"] == 8976
    pinned = Ef45Target("t", Ef45TargetConfig(type="ef45", url="http://x", record_version=9000))
    other = pinned.render(person, found)
    assert other["right_eye_template"] == "R" * 64 and "left_eye_template" not in other
