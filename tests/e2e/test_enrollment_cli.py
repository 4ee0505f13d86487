"""`syncd backfill` and `syncd keys` as processes: no template in any output, the ledger
file holds no template in clear, a wrong key is a clear error, rotation re-encrypts."""

from __future__ import annotations

import base64
import hashlib
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa

from syncd.engine.backfill import backfill
from syncd.errors import LedgerError
from syncd.ledger.templates import load_template
from tests.fixtures.enrollments import Site, enroll, new_template, site, write_key

__all__ = ["site"]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True),
]


def _enroll_two(site: Site) -> tuple[list[str], list[str]]:
    keys = list(site.terminals["a"].subjects)[:2]
    secrets = [new_template() for _ in range(4)]
    enroll(site.terminals["a"], keys[0], left=secrets[0], right=secrets[1], face=secrets[2])
    enroll(site.terminals["b"], keys[1], left=secrets[0], right=secrets[3])  # a duplicate
    return keys, secrets


def test_nothing_secret_reaches_output_logs_or_audit(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, secrets = _enroll_two(site)
    pins = [r for r in (site.workdir / "people.csv").read_text().splitlines()[1:]]
    outputs = [site.run("backfill"), site.run("plan", "--format", "json")]
    outputs += [site.run("apply", "--yes"), site.run("status")]
    assert all(p.returncode == 0 for p in outputs), [p.stderr for p in outputs]
    engine = site.engine()
    try:
        backfill(engine)
        with engine.ledger.db.connect() as conn:
            audit = "".join(
                str(conn.exec_driver_sql(f"SELECT * FROM {table}").all())
                for table in ("changes", "findings", "target_records", "runs")
            )
    finally:
        engine.close()
    text = "".join(p.stdout + p.stderr for p in outputs) + caplog.text
    assert '"<redacted>"' in outputs[1].stdout  # templates: added, shown redacted
    assert "left_eye_template" in outputs[1].stdout
    assert "enroll" in audit and pins
    for secret in secrets:
        assert secret[:40] not in text
        assert secret[:40] not in audit


def test_ledger_file_holds_no_template_in_clear(site: Site) -> None:
    _, secrets = _enroll_two(site)
    assert site.run("backfill").returncode == 0
    database = Path(site.ledger_url.removeprefix("sqlite:///"))
    raw = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    for secret in secrets:
        assert secret.encode()[:40] not in raw
        assert base64.b64decode(secret)[:40] not in raw
        assert hashlib.sha256(secret.encode()).hexdigest().encode() not in raw
    engine = sa.create_engine(site.ledger_url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT template, digest FROM enrollments").all()
    engine.dispose()
    assert len(rows) >= 3
    assert all(bytes(t).startswith(b"sy1") and len(d) == 64 for t, d in rows)


def test_wrong_key_is_a_clear_error(site: Site) -> None:
    _enroll_two(site)
    assert site.run("backfill").returncode == 0
    site.write_config(key_file=write_key(site.workdir / "other.key"))
    with pytest.raises(LedgerError, match="wrong template key"):
        site.engine()
    shown = site.run("plan")
    assert shown.returncode == 5
    assert "wrong template key" in shown.stderr and "key id" in shown.stderr


def test_keys_generate_then_rotate(site: Site) -> None:
    generated = site.run("keys", "generate")
    assert generated.returncode == 0
    assert len(base64.b64decode(generated.stdout.strip(), validate=True)) == 32
    keys, secrets = _enroll_two(site)
    assert site.run("backfill").returncode == 0
    new_key = site.workdir / "new.key"
    new_key.write_text(generated.stdout, encoding="utf-8")
    new_key.chmod(0o600)
    rotated = site.run("keys", "rotate", "--new-key-file", str(new_key))
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted" in rotated.stdout
    with pytest.raises(LedgerError, match="wrong template key"):
        site.engine()  # the old key opens nothing any more
    site.write_config(key_file=new_key)
    engine = site.engine()
    try:
        assert load_template(engine, keys[0], "left_iris") == secrets[0].encode()
        assert load_template(engine, keys[0], "right_iris") == secrets[1].encode()
        assert engine.plan(engine.read()).pending > 0  # the fan-out is still to come
    finally:
        engine.close()
    site.apply()
    assert site.terminals["b"].subjects[keys[0]]["left_eye_template"] == secrets[0]
