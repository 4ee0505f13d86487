"""Secrets at rest, with the CLI as a real process, on SQLite and on PostgreSQL.

- After `syncd apply`, no PIN of the HR file is anywhere in the ledger in clear: not in
  the SQLite files (database, WAL, shared memory) nor in a `pg_dump` of the schema.
- A ledger syncd creates, its sidecars and the PIN key file it makes are mode 0600
  under umask 022; a loose existing ledger file is made private, and syncd says so.
- A PIN change still reaches the EF-45 emulator, and plans converge (digests stable).
- A ledger an older syncd left with clear PINs is sealed by `syncd db upgrade`
  (idempotently) or by the next apply.
- A secret file group or others may read is refused, naming it; a credential is taken.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from syncd.emulators.hr_sample import read_people_csv, write_people_csv
from syncd.ledger.crypto import generate_key_text
from syncd.ledger.schema import changes, cursors, people, target_records
from syncd.model import canonical_json, digest
from tests.fixtures.syncd_env import SYNCD, SyncdEnv

CLEAR_PIN = re.compile(rb'"pin"\s*:\s*"[^"]')
"""A PIN stored as a JSON string that is not empty: in clear, whatever its value."""
SQLITE_ONLY = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)


def cli(
    env: SyncdEnv, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `syncd ARGS` as a real process under umask 022 (the usual login default)."""
    return subprocess.run(
        [*SYNCD, *args],
        cwd=env.workdir,
        env={**env.environment(), **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        umask=0o022,
        check=False,
    )


def distinct_pins(env: SyncdEnv) -> dict[str, str]:
    """Give every HR row that has a PIN a 10-digit one no other ledger value can contain
    by chance; return employee id → PIN."""
    rows = read_people_csv(env.csv_path)
    for index, row in enumerate(rows):
        if row["pin"]:
            row["pin"] = f"86{index:08d}"
    write_people_csv(env.csv_path, rows)
    return {r["employee_id"]: r["pin"] for r in rows if r["pin"]}


def is_sqlite(env: SyncdEnv) -> bool:
    return env.ledger_url.startswith("sqlite")


def ledger_files(env: SyncdEnv) -> list[Path]:
    """Return the SQLite ledger file and those of its sidecars that exist."""
    database = Path(env.ledger_url.removeprefix("sqlite:///"))
    sidecars = [database.with_name(database.name + s) for s in ("-wal", "-shm", "-journal")]
    return [database, *(p for p in sidecars if p.exists())]


def ledger_bytes(env: SyncdEnv) -> bytes:
    """Return every byte of the ledger: its SQLite files, or a pg_dump of its schema."""
    if is_sqlite(env):
        return b"".join(path.read_bytes() for path in ledger_files(env))
    url = sa.make_url(env.ledger_url)
    schema = str(url.query["options"]).split("search_path=", 1)[1]
    dump = subprocess.run(
        ["pg_dump", "-h", str(url.host), "-p", str(url.port or 5432), "-U", str(url.username),
         "--schema", schema, "--no-owner", str(url.database)],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    assert b"COPY" in dump.stdout and schema.encode() in dump.stdout
    return dump.stdout


def assert_no_clear_pin(env: SyncdEnv, pins: dict[str, str]) -> None:
    data = ledger_bytes(env)
    assert b"people" in data  # the dump or the files really hold the tables
    found = [key for key, pin in pins.items() if pin.encode() in data]
    assert not found, f"PINs in clear in the ledger for {found}"
    assert CLEAR_PIN.search(data) is None


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def stored_json(env: SyncdEnv) -> dict[str, Any]:
    """Return the stored JSON texts of every person and every record, by row."""
    engine = sa.create_engine(env.ledger_url)
    try:
        with engine.connect() as conn:
            found = {f"p:{k}": d for k, d in conn.execute(sa.select(people.c.key, people.c.data))}
            query = sa.select(target_records.c.target, target_records.c.person_key,
                              target_records.c.record)  # fmt: skip
            found |= {f"r:{t}:{k}": r for t, k, r in conn.execute(query) if r}
    finally:
        engine.dispose()
    return found


def unseal_like_an_old_syncd(env: SyncdEnv, pins: dict[str, str]) -> int:
    """Rewrite the ledger as a syncd before sealing left it: PINs in clear, plain SHA-256
    digests of the clear records (which confirm a guessed PIN), no mark, and
    on SQLite a deleted record's clear PIN left in free space (as a build without
    secure_delete leaves it). Return how many rows now hold a clear PIN."""
    engine = sa.create_engine(env.ledger_url)
    rewritten = 0
    try:
        with engine.begin() as conn:
            for key, data in conn.execute(sa.select(people.c.key, people.c.data)).all():
                if key in pins:
                    person = {**_loads(data), "pin": pins[key]}
                    values = {"data": canonical_json(person), "digest": digest(person)}
                    conn.execute(people.update().where(people.c.key == key).values(values))
                    rewritten += 1
            rows = conn.execute(sa.select(target_records)).all()
            for row in rows:
                if row.record and row.person_key in pins:
                    record = {**_loads(row.record), "pin": pins[row.person_key]}
                    values = {"record": canonical_json(record), "digest": digest(record)}
                    match = sa.and_(target_records.c.target == row.target,
                                    target_records.c.person_key == row.person_key)  # fmt: skip
                    conn.execute(target_records.update().where(match).values(values))
                    rewritten += 1
            conn.execute(
                cursors.delete().where(cursors.c.name.in_(["crypto:pins", "crypto:digests"]))
            )
    finally:
        engine.dispose()
    if is_sqlite(env):
        pins["deleted"] = "8612345678"
        raw = sqlite3.connect(ledger_files(env)[0])
        raw.execute("PRAGMA secure_delete=OFF")
        raw.execute(
            "INSERT INTO target_records (target, person_key, state, created_by_syncd, "
            "attempts, updated_at, record) VALUES ('gone', 'deleted', 'ok', 1, 0, "
            "'2026-01-01 00:00:00.000000', ?)",
            (canonical_json({"pin": pins["deleted"], "pad": "x" * 3000}),),
        )
        raw.commit()
        raw.execute("DELETE FROM target_records WHERE target = 'gone'")
        raw.commit()
        raw.close()
    return rewritten


def _loads(text: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(text)
    return value


@contextmanager
def reader_under_umask_022(database: Path) -> Iterator[None]:
    """Hold a reader open on `database`, opened under umask 022: the `-wal` and `-shm`
    files then outlive the CLI's processes, which write through them."""
    previous = os.umask(0o022)
    try:
        reader = sqlite3.connect(database)
        reader.execute("SELECT count(*) FROM people").fetchall()
    finally:
        os.umask(previous)
    try:
        yield
    finally:
        reader.close()


def use_fresh_sqlite_file(env: SyncdEnv) -> Path:
    """Point the env at a ledger file that does not exist yet; return its path."""
    path = env.workdir / "fresh" / "ledger.db"
    path.parent.mkdir()
    env.ledger_url = f"sqlite:///{path}"
    env.write_config()
    return path


def set_ledger_option(env: SyncdEnv, line: str) -> None:
    """Add `line` to the [ledger] table of the env's syncd.toml."""
    text = env.config_path.read_text(encoding="utf-8")
    env.config_path.write_text(text.replace("[ledger]\n", f"[ledger]\n{line}\n", 1), "utf-8")


def write_secret(path: Path, text: str, file_mode: int) -> Path:
    path.write_text(text + "\n", encoding="utf-8")
    path.chmod(file_mode)
    return path


def test_apply_leaves_no_pin_in_clear_and_private_files(syncd_env: SyncdEnv) -> None:
    env = syncd_env
    pins = distinct_pins(env)
    assert len(pins) > 10
    key_file = env.workdir / "pin.key"
    with ExitStack() as stack:
        if is_sqlite(env):
            database = use_fresh_sqlite_file(env)
            key_file = database.parent / "pin.key"
            upgraded = cli(env, "db", "upgrade")
            assert upgraded.returncode == 0, upgraded.stderr
            stack.enter_context(reader_under_umask_022(database))
        applied = cli(env, "apply", "--yes")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert f"created PIN key {key_file}" in applied.stderr
        assert "back it up with the ledger" in applied.stderr
        assert mode(key_file) == 0o600
        for key, pin in pins.items():
            for state in env.terminals.values():
                assert state.user_info[key]["pin"] == pin  # the terminals get it in clear
        assert_no_clear_pin(env, pins)
        if is_sqlite(env):
            files = ledger_files(env)
            assert [p.name[len("ledger.db") :] for p in files] == ["", "-wal", "-shm"]
            assert {mode(p) for p in files} == {0o600}, [(p.name, oct(mode(p))) for p in files]
    again = cli(env, "plan", "--check")
    assert again.returncode == 0, again.stdout  # digests of the clear records: in step
    assert "created PIN key" not in again.stderr  # said once, when it was made


def test_a_pin_change_reaches_the_terminal(syncd_env: SyncdEnv) -> None:
    env = syncd_env
    pins = distinct_pins(env)
    assert cli(env, "apply", "--yes").returncode == 0
    rows = read_people_csv(env.csv_path)
    changed = next(r for r in rows if r["pin"])
    changed["pin"] = "8699999999"
    write_people_csv(env.csv_path, rows)
    check = cli(env, "plan", "--check")
    assert check.returncode == 1, check.stdout + check.stderr
    assert cli(env, "apply", "--yes").returncode == 0
    for state in env.terminals.values():
        assert state.user_info[changed["employee_id"]]["pin"] == "8699999999"
    assert cli(env, "plan", "--check").returncode == 0
    pins[changed["employee_id"]] = "8699999999"
    assert_no_clear_pin(env, pins)


def test_db_upgrade_seals_clear_pins_once(syncd_env: SyncdEnv) -> None:
    env = syncd_env
    pins = distinct_pins(env)
    assert cli(env, "apply", "--yes").returncode == 0
    people_with_pin = len(pins)
    rewritten = unseal_like_an_old_syncd(env, pins)
    assert rewritten == people_with_pin * (1 + len(env.terminals))
    data = ledger_bytes(env)
    absent = [k for k, pin in pins.items() if pin.encode() not in data]
    assert not absent, absent  # the test does make clear PINs
    upgraded = cli(env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"encrypted the PINs left in clear in {rewritten} row(s)" in upgraded.stdout
    assert_no_clear_pin(env, pins)  # VACUUM on SQLite: no old page keeps them either
    sealed = stored_json(env)
    again = cli(env, "db", "upgrade")
    assert again.returncode == 0 and "encrypted" not in again.stdout
    assert stored_json(env) == sealed  # idempotent: nothing sealed is rewritten
    check = cli(env, "plan", "--check")
    assert check.returncode == 0, check.stdout  # sealing moved no digest: nothing to push


def test_the_next_apply_seals_clear_pins(syncd_env: SyncdEnv) -> None:
    env = syncd_env
    pins = distinct_pins(env)
    assert cli(env, "apply", "--yes").returncode == 0
    unseal_like_an_old_syncd(env, pins)
    applied = cli(env, "apply", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert_no_clear_pin(env, pins)
    assert all(b'"pin":{"sealed":' in t.encode() or '"pin":""' in t
               for t in stored_json(env).values())  # fmt: skip


def test_db_upgrade_without_the_key_leaves_it_to_the_next_apply(syncd_env: SyncdEnv) -> None:
    env = syncd_env
    pins = distinct_pins(env)
    assert cli(env, "apply", "--yes").returncode == 0
    unseal_like_an_old_syncd(env, pins)
    credentials = env.workdir / "credentials"
    credentials.mkdir()
    write_secret(credentials / "pin-key", generate_key_text(), 0o400)
    set_ledger_option(env, 'pin_key = { credential = "pin-key" }')
    upgraded = cli(env, "db", "upgrade")  # as `systemd-run … db upgrade`: no credentials
    assert upgraded.returncode == 0, upgraded.stderr
    assert "not encrypted yet" in upgraded.stderr and "CREDENTIALS_DIRECTORY" in upgraded.stderr
    assert CLEAR_PIN.search(ledger_bytes(env)) is not None
    applied = cli(env, "apply", "--yes", extra_env={"CREDENTIALS_DIRECTORY": str(credentials)})
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert_no_clear_pin(env, pins)


def test_the_pin_key_must_fit_the_ledger(syncd_env: SyncdEnv) -> None:
    env = syncd_env
    distinct_pins(env)
    assert cli(env, "apply", "--yes").returncode == 0
    key_file = env.workdir / "pin.key"
    key_file.rename(env.workdir / "pin.key.saved")
    missing = cli(env, "plan")
    assert missing.returncode == 3, missing.stdout + missing.stderr
    assert f"{key_file} does not exist" in " ".join(missing.stderr.split())
    assert not key_file.exists()  # a ledger with sealed PINs never gets a fresh key
    other = write_secret(env.workdir / "other.key", generate_key_text(), 0o600)
    set_ledger_option(env, f'pin_key = {{ file = "{other}" }}')
    wrong = cli(env, "plan")
    assert wrong.returncode == 5 and "wrong PIN key" in wrong.stderr, wrong.stderr
    # Moving to a configured key: the old file still opens, the next apply re-seals.
    (env.workdir / "pin.key.saved").rename(key_file)
    moved = cli(env, "apply", "--yes")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    key_file.unlink()
    assert cli(env, "plan", "--check").returncode == 0


@SQLITE_ONLY
def test_secret_files_must_be_private_credentials_are_taken(syncd_env: SyncdEnv) -> None:
    env = syncd_env
    loose = write_secret(env.workdir / "templates.key", generate_key_text(), 0o644)
    env.extra_config = ["[templates]", f'key = {{ file = "{loose}" }}']
    env.write_config()
    refused = cli(env, "plan")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    message = " ".join(refused.stderr.split())
    assert str(loose) in message and f"chmod 600 {loose}" in message
    assert "mode 0644" in message
    loose.chmod(0o600)
    assert cli(env, "plan").returncode == 0
    credentials = env.workdir / "credentials"
    credentials.mkdir()
    write_secret(credentials / "template-key", loose.read_text().strip(), 0o644)
    env.extra_config = ["[templates]", 'key = { credential = "template-key" }']
    env.write_config()
    taken = cli(env, "plan", extra_env={"CREDENTIALS_DIRECTORY": str(credentials)})
    assert taken.returncode == 0, taken.stdout + taken.stderr


@SQLITE_ONLY
def test_a_loose_existing_ledger_file_is_made_private(syncd_env: SyncdEnv) -> None:
    env = syncd_env
    database = Path(env.ledger_url.removeprefix("sqlite:///"))
    database.chmod(0o644)
    status = cli(env, "status")
    assert status.returncode == 0, status.stderr
    assert f"ledger file {database} was readable by group or others (mode 0644)" in " ".join(
        status.stderr.split()
    )
    assert mode(database) == 0o600
    assert "readable by group" not in cli(env, "status").stderr  # said once: it is fixed


def four_digit_pins(env: SyncdEnv) -> dict[str, str]:
    """Give every HR row that has a PIN a 4-digit one; return employee id → PIN."""
    rows = read_people_csv(env.csv_path)
    for index, row in enumerate(rows):
        if row["pin"]:
            row["pin"] = f"{(index * 7919 + 1234) % 10000:04d}"
    write_people_csv(env.csv_path, rows)
    return {r["employee_id"]: r["pin"] for r in rows if r["pin"]}


def digest_rows(env: SyncdEnv) -> list[tuple[str, dict[str, Any], str]]:
    """Return (person key, stored JSON, stored digest) of every person and record."""
    engine = sa.create_engine(env.ledger_url)
    try:
        with engine.connect() as conn:
            query = sa.select(people.c.key, people.c.data, people.c.digest)
            rows = [(k, _loads(d), h) for k, d, h in conn.execute(query)]
            rows += [(r.person_key, _loads(r.record), r.digest)
                     for r in conn.execute(sa.select(target_records))
                     if r.record and r.digest]  # fmt: skip
    finally:
        engine.dispose()
    return rows


def brute_forced(env: SyncdEnv, pins: dict[str, str]) -> dict[str, int]:
    """Try every 4-digit PIN against the plain digest (SHA-256 of the canonical JSON) of
    each stored person and record holding a PIN, as an attacker with the ledger would;
    return how many rows were tried and how many gave their PIN up."""
    tried = found = 0
    for key, data, stored in digest_rows(env):
        if key not in pins:
            continue
        tried += 1
        head, tail = canonical_json({**data, "pin": "@PIN@"}).encode().split(b"@PIN@")
        guesses = (f"{p:04d}".encode() for p in range(10000))
        found += any(hashlib.sha256(head + g + tail).hexdigest() == stored for g in guesses)
    assert tried >= len(pins) * (1 + len(env.terminals))  # every person and record tried
    return {"tried": tried, "found": found}


def plainly_digested(env: SyncdEnv, pins: dict[str, str]) -> None:
    """Rewrite the ledger as the first syncd that sealed PINs left it: PINs sealed, its
    mark `crypto:pins` set, but plain digests of the clear rows, audit digests too."""
    engine = sa.create_engine(env.ledger_url)
    try:
        with engine.begin() as conn:
            for key, data in conn.execute(sa.select(people.c.key, people.c.data)).all():
                if key in pins:
                    plain = digest({**_loads(data), "pin": pins[key]})
                    conn.execute(people.update().where(people.c.key == key).values(digest=plain))
            for row in conn.execute(sa.select(target_records)).all():
                if row.record and row.digest and row.person_key in pins:
                    plain = digest({**_loads(row.record), "pin": pins[row.person_key]})
                    match = sa.and_(target_records.c.target == row.target,
                                    target_records.c.person_key == row.person_key)  # fmt: skip
                    conn.execute(target_records.update().where(match).values(digest=plain))
                    same = sa.and_(changes.c.target == row.target,
                                   changes.c.person_key == row.person_key)  # fmt: skip
                    conn.execute(changes.update().where(same).values(after_digest=plain))
            conn.execute(cursors.delete().where(cursors.c.name == "crypto:digests"))
    finally:
        engine.dispose()


def audit_digests(env: SyncdEnv) -> list[str]:
    engine = sa.create_engine(env.ledger_url)
    try:
        with engine.connect() as conn:
            query = sa.select(changes.c.before_digest, changes.c.after_digest)
            return [d for row in conn.execute(query) for d in row if d is not None]
    finally:
        engine.dispose()


def test_no_stored_digest_gives_a_4_digit_pin_up(syncd_env: SyncdEnv) -> None:
    """Trying 0000–9999 against the stored digests finds no PIN: a digest of a record or
    person holding one is keyed; the next plan is in step (nothing pushed again)."""
    env = syncd_env
    pins = four_digit_pins(env)
    applied = cli(env, "apply", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert brute_forced(env, pins)["found"] == 0
    check = cli(env, "plan", "--check")
    assert check.returncode == 0, check.stdout + check.stderr


def test_an_old_ledger_is_keyed_by_db_upgrade_pushing_nothing(syncd_env: SyncdEnv) -> None:
    """A ledger from before PIN sealing (clear PINs, plain digests: every PIN given up in
    a second) is keyed by `db upgrade`, audit digests too; the next plan is in step."""
    env = syncd_env
    pins = four_digit_pins(env)
    assert cli(env, "apply", "--yes").returncode == 0
    unseal_like_an_old_syncd(env, dict(pins))  # (adds a deleted row's PIN to its dict)
    plainly_digested(env, pins)  # the audit's digests too, as that syncd wrote them
    assert brute_forced(env, pins)["found"] == len(pins) * (1 + len(env.terminals))
    upgraded = cli(env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert brute_forced(env, pins)["found"] == 0
    audit = audit_digests(env)
    assert audit and any(d.startswith("h") for d in audit)  # the plain ones, keyed
    plain = {digest({**data, "pin": pins[k]}) for k, data, _ in digest_rows(env) if k in pins}
    assert not plain & set(audit)  # no audit digest confirms a PIN any more
    check = cli(env, "plan", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert brute_forced(env, pins)["found"] == 0


def test_sealed_pins_with_plain_digests_are_keyed_by_the_next_plan(syncd_env: SyncdEnv) -> None:
    """A ledger whose PINs were sealed by a syncd that kept plain digests (mark
    `crypto:pins` set, no `crypto:digests`) is keyed by the next plan, which is in step;
    an apply then pushes nothing."""
    env = syncd_env
    pins = four_digit_pins(env)
    assert cli(env, "apply", "--yes").returncode == 0
    plainly_digested(env, pins)
    assert brute_forced(env, pins)["found"] == len(pins) * (1 + len(env.terminals))
    check = cli(env, "plan", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert brute_forced(env, pins)["found"] == 0
    assert not {d for d in audit_digests(env) if not d.startswith("h")} & {
        digest({**data, "pin": pins[k]}) for k, data, _ in digest_rows(env) if k in pins
    }
    applied = cli(env, "apply", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert cli(env, "plan", "--check").returncode == 0
