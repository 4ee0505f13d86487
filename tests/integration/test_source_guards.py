"""The engine's source guards and its full-or-delta decision, on real slapd and CSV files.

A full read that returns no one, or shrinks past `safety.max_source_shrink`, is refused
and leaves every ledger table as it was; `allow_shrink` lets the shrink through; a delta
read is partial by nature and never trips the shrink guard. `Syncer.read(full=None)`
reads in full without a cursor or once `full_read_every_h` has passed, else a delta.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import ldap3
import pytest
import sqlalchemy as sa

from syncd.config import load_config, shipped_path
from syncd.emulators.ef45 import create_ef45_app
from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.hr_sample import sample_rows, write_people_csv
from syncd.emulators.server import EmulatorServer
from syncd.engine.run import ApplyOptions, Syncer, utc_now
from syncd.errors import SourceRefused
from syncd.ledger import migrate
from syncd.ledger.store import create_ledger_engine
from tests.fixtures.ldap import READER_DN, Slapd, load_people

PASSWORD_ENV = "SYNCD_TEST_GUARD_LDAP_PASSWORD"
TABLES = ("people", "target_records", "cursors", "changes", "runs")


@pytest.fixture
def terminal_url() -> Iterator[str]:
    """One emulated EF-45 terminal's URL."""
    server = EmulatorServer(create_ef45_app(Ef45State())).start()
    try:
        yield server.url
    finally:
        server.stop()


def _make_engine(tmp_path: Path, ledger_url: str, source: list[str], terminal: str) -> Syncer:
    lines = [
        "[ledger]",
        f'url = "{ledger_url}"',
        "[sources.src]",
        *source,
        "[targets.door]",
        'type = "ef45"',
        f'url = "{terminal}"',
        "timeout_s = 5",
    ]
    path = tmp_path / "syncd.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = load_config(path)
    engine = create_ledger_engine(config.ledger.url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    return Syncer.from_config(config)


def snapshot(engine: Syncer) -> dict[str, list[tuple[object, ...]]]:
    """Return every row of the ledger tables a run could write, in a stable order."""
    with engine.ledger.db.connect() as conn:
        return {
            name: sorted(
                (tuple(row) for row in conn.execute(sa.text(f"SELECT * FROM {name}"))), key=repr
            )
            for name in TABLES
        }


def assert_refused_untouched(engine: Syncer, call: Callable[[], object], words: str) -> None:
    """Assert `call` raises SourceRefused mentioning `words` (a regular expression that
    must say something: "" would match any refusal) and the ledger did not change."""
    assert words.strip(), "name the refusal expected"
    before = snapshot(engine)
    with pytest.raises(SourceRefused, match=words):
        call()
    assert snapshot(engine) == before


# -- LDAP --------------------------------------------------------------------------


@pytest.fixture
def ldap_engine(
    tmp_path: Path,
    ledger_url: str,
    slapd: Slapd,
    ldap_ou: str,
    terminal_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Syncer]:
    """An engine over a fresh OU of 10 people, applied once (so the ledger holds them).

    Nine people, then (a second later) one marker `m0`: the OpenLDAP cursor is the latest
    modifyTimestamp and inclusive, so only the marker shares its second.
    """
    monkeypatch.setenv(PASSWORD_ENV, slapd.passwords[READER_DN])
    load_people(slapd, 9, ou=ldap_ou)
    _next_second()
    load_people(slapd, 1, ou=ldap_ou, prefix="m")
    source = [
        'type = "ldap"',
        f'url = "{slapd.url}"',
        f'bind_dn = "{READER_DN}"',
        f'password = {{ env = "{PASSWORD_ENV}" }}',
        f'base_dn = "{ldap_ou}"',
        'filter = "(objectClass=inetOrgPerson)"',
        f'mapping = "{shipped_path("mappings", "openldap.toml")}"',
    ]
    engine = _make_engine(tmp_path, ledger_url, source, terminal_url)
    engine.apply()
    yield engine
    engine.close()


def _delete(slapd: Slapd, ou: str, uids: list[str]) -> None:
    conn = slapd.admin()
    for uid in uids:
        conn.delete(f"uid={uid},{ou}")
    conn.unbind()


def _next_second() -> None:
    """Wait until the wall clock enters its next second (modifyTimestamp's grain)."""
    now = int(time.time())
    while int(time.time()) == now:
        time.sleep(0.02)


def test_ldap_empty_full_read_is_refused(ldap_engine: Syncer, slapd: Slapd, ldap_ou: str) -> None:
    _delete(slapd, ldap_ou, [f"p{n}" for n in range(9)] + ["m0"])
    assert_refused_untouched(
        ldap_engine, lambda: ldap_engine.apply(ApplyOptions(full=True)), "no one"
    )
    assert_refused_untouched(ldap_engine, lambda: ldap_engine.read(full=True), "no one")
    # Even allow_shrink does not accept "everyone left".
    assert_refused_untouched(
        ldap_engine, lambda: ldap_engine.apply(ApplyOptions(full=True, allow_shrink=True)), "no one"
    )


def test_ldap_shrink_is_refused_unless_allowed(
    ldap_engine: Syncer, slapd: Slapd, ldap_ou: str
) -> None:
    _delete(slapd, ldap_ou, ["p0", "p1", "p2"])
    assert_refused_untouched(
        ldap_engine, lambda: ldap_engine.apply(ApplyOptions(full=True)), "30% fewer"
    )
    reading = ldap_engine.read(full=True, allow_shrink=True)
    assert len(reading.desired.people) == 7
    assert sum(len(keys) for keys in reading.newly_gone.values()) == 3


def test_ldap_delta_is_exempt_from_the_shrink_guard(
    ldap_engine: Syncer, slapd: Slapd, ldap_ou: str
) -> None:
    _next_second()
    conn = slapd.admin()
    conn.modify(f"uid=p5,{ldap_ou}", {"sn": [(ldap3.MODIFY_REPLACE, ["Changed"])]})
    conn.unbind()
    # The delta holds p5 and the marker: an 80 % "shrink" had it been a full read.
    reading = ldap_engine.read()
    read = reading.reads["src"]
    assert not read.complete and len(read.people) == 2
    assert len(reading.desired.people) == 10
    assert "Changed" in {p.last_name for p in reading.desired.people.values()}
    _, result, _ = ldap_engine.apply()
    assert result.count("applied") == 1


def test_engine_decides_full_or_delta_by_cursor_and_age(ldap_engine: Syncer) -> None:
    cursor = ldap_engine.ledger.get_cursor("source:src")
    full_at = ldap_engine.ledger.get_cursor("source:src:full_at")
    assert cursor is not None and full_at is not None
    assert not ldap_engine.wants_full("src", cursor)
    assert ldap_engine.wants_full("src", None)
    later = datetime.fromisoformat(full_at) + timedelta(hours=24, seconds=1)
    ldap_engine.clock = lambda: later
    assert ldap_engine.wants_full("src", cursor)
    assert ldap_engine.read().reads["src"].complete
    ldap_engine.clock = utc_now


def test_dry_run_moves_no_cursor(ldap_engine: Syncer, slapd: Slapd, ldap_ou: str) -> None:
    load_people(slapd, 2, ou=ldap_ou, prefix="new")
    before = snapshot(ldap_engine)["cursors"]
    for full in (None, True, False):
        reading = ldap_engine.read(full=full)
        ldap_engine.record_dry_run(ldap_engine.plan(reading))
    assert snapshot(ldap_engine)["cursors"] == before


# -- CSV ---------------------------------------------------------------------------


@pytest.fixture
def csv_engine(tmp_path: Path, ledger_url: str, terminal_url: str) -> Iterator[Syncer]:
    """An engine over an HR file of 40 people, applied once."""
    write_people_csv(tmp_path / "people.csv", sample_rows(40))
    source = [
        'type = "csv"',
        f'path = "{tmp_path / "people.csv"}"',
        f'mapping = "{shipped_path("mappings", "hr-csv.toml")}"',
    ]
    engine = _make_engine(tmp_path, ledger_url, source, terminal_url)
    engine.apply()
    yield engine
    engine.close()


def test_csv_empty_export_is_refused(csv_engine: Syncer, tmp_path: Path) -> None:
    write_people_csv(tmp_path / "people.csv", [])
    no_rows = "people.csv: no data rows after the header"
    assert_refused_untouched(
        csv_engine, lambda: csv_engine.apply(ApplyOptions(allow_shrink=True)), no_rows
    )
    assert_refused_untouched(csv_engine, csv_engine.read, no_rows)


def test_csv_shrink_is_refused_unless_allowed(csv_engine: Syncer, tmp_path: Path) -> None:
    write_people_csv(tmp_path / "people.csv", list(sample_rows(40))[:28])
    assert_refused_untouched(csv_engine, csv_engine.apply, "30% fewer")
    # A CSV read is always full, whatever is asked: the guard holds for a "delta" too.
    assert_refused_untouched(csv_engine, lambda: csv_engine.read(full=False), "30% fewer")
    _, result, _ = csv_engine.apply(ApplyOptions(allow_shrink=True, allow_deletes=12))
    assert result.count("applied") == 12
