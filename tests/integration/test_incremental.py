"""Incremental reads end to end: slapd → `syncd` CLI (subprocess) → an emulated EF-45.

A full read and apply, then changes in slapd: a delta `apply` carries the modify and the
rename (same entryUUID, new DN) as updates and does not notice the deletion; only the
next full read (`apply --full`) finds it and disables the leaver. A dry run never moves
a cursor.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ldap3
import pytest
import sqlalchemy as sa

from syncd.config import shipped_path
from syncd.emulators.ef45 import create_ef45_app
from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.server import EmulatorServer
from tests.fixtures.ldap import READER_DN, Slapd, load_people
from tests.fixtures.syncd_env import SyncdEnv

PASSWORD_ENV = "SYNCD_TEST_INCR_LDAP_PASSWORD"
PEOPLE = 20


@dataclass
class LdapEnv(SyncdEnv):
    """A SyncdEnv whose one source is an OU of the session slapd (openldap mapping)."""

    slapd: Slapd | None = None
    ou: str = ""

    def write_config(self) -> Path:
        assert self.slapd is not None
        mapping = shipped_path("mappings", "openldap.toml")
        lines = [
            "[ledger]",
            f'url = "{self.ledger_url}"',
            "[apply]",
            "retry_initial_s = 0.01",
            "retry_max_s = 0.05",
            "[sources.dir]",
            'type = "ldap"',
            'flavor = "openldap"',
            f'url = "{self.slapd.url}"',
            f'bind_dn = "{READER_DN}"',
            f'password = {{ env = "{PASSWORD_ENV}" }}',
            f'base_dn = "{self.ou}"',
            'filter = "(objectClass=inetOrgPerson)"',
            "page_size = 50",
            "full_read_every_h = 24",
            f'mapping = "{mapping}"',
        ]
        for name, url in self.urls.items():
            lines += [f"[targets.{name}]", 'type = "ef45"', f'url = "{url}"', "timeout_s = 5"]
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return self.config_path

    def cursors(self) -> dict[str, str]:
        """Return every stored cursor, read straight from the ledger."""
        engine = sa.create_engine(self.ledger_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT name, value FROM cursors")).all()
        finally:
            engine.dispose()
        return {str(r[0]): str(r[1]) for r in rows}


@pytest.fixture
def ldap_env(
    tmp_path: Path,
    ledger_url: str,
    slapd: Slapd,
    ldap_ou: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[LdapEnv]:
    """20 people in a fresh OU, one emulated terminal, a migrated ledger."""
    monkeypatch.setenv(PASSWORD_ENV, slapd.passwords[READER_DN])
    load_people(slapd, PEOPLE, ou=ldap_ou)
    state = Ef45State()
    server = EmulatorServer(create_ef45_app(state)).start()
    try:
        env = LdapEnv(
            tmp_path, ledger_url, {"door": state}, {"door": server.url}, slapd=slapd, ou=ldap_ou
        )
        env.write_config()
        env.run("db", "upgrade", check=True)
        yield env
    finally:
        server.stop()


def _uuids(slapd: Slapd, ou: str) -> dict[str, str]:
    """Return uid → entryUUID of everyone under `ou`."""
    conn = slapd.admin()
    conn.search(ou, "(objectClass=inetOrgPerson)", attributes=["uid", "entryUUID"])
    found = {
        e["raw_attributes"]["uid"][0].decode(): e["raw_attributes"]["entryUUID"][0].decode()
        for e in conn.response
    }
    conn.unbind()
    return {uid: key.lower() for uid, key in found.items()}


def _ops(report_stdout: str) -> set[tuple[str, str]]:
    document = json.loads(report_stdout)
    return {(a["op"], a["person"]) for a in document["targets"]["door"]}


def _change_directory(slapd: Slapd, ou: str) -> None:
    """p1: new surname; p2: renamed (new RDN) and new surname; p3: moved; p4: deleted."""
    conn = slapd.admin()
    conn.modify(f"uid=p1,{ou}", {"sn": [(ldap3.MODIFY_REPLACE, ["Modified"])]})
    conn.modify_dn(f"uid=p2,{ou}", "uid=p2-married")
    conn.modify(f"uid=p2-married,{ou}", {"sn": [(ldap3.MODIFY_REPLACE, ["Married"])]})
    conn.add(f"ou=moved,{ou}", ["organizationalUnit"])
    conn.modify_dn(f"uid=p3,{ou}", "uid=p3", new_superior=f"ou=moved,{ou}")
    conn.delete(f"uid=p4,{ou}")
    conn.unbind()


def test_delta_carries_modify_and_rename_full_read_finds_deletion(ldap_env: LdapEnv) -> None:
    assert ldap_env.slapd is not None
    keys = _uuids(ldap_env.slapd, ldap_env.ou)
    first = ldap_env.run("apply", "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    door = ldap_env.terminals["door"]
    assert set(door.subjects) == set(keys.values())
    after_full = ldap_env.cursors()
    assert {"source:dir", "source:dir:full_at"} <= set(after_full)

    _change_directory(ldap_env.slapd, ldap_env.ou)
    dry = ldap_env.run("plan", "--format", "json")
    assert dry.returncode == 0, dry.stderr
    # The delta sees the modify and the rename as updates of the same keys; the move
    # changes nothing a terminal holds; the deletion is invisible to a delta.
    assert _ops(dry.stdout) == {("update", keys["p1"]), ("update", keys["p2"])}
    assert ldap_env.cursors() == after_full, "a dry run moved a cursor"

    delta = ldap_env.run("apply", "--yes")
    assert delta.returncode == 0, delta.stdout + delta.stderr
    assert door.subjects[keys["p1"]]["last_name"] == "Modified"
    assert door.subjects[keys["p2"]]["last_name"] == "Married"
    assert door.subjects[keys["p4"]]["access_allowed"] is True  # not seen yet
    assert len(door.subjects) == PEOPLE
    after_delta = ldap_env.cursors()
    assert after_delta["source:dir:full_at"] == after_full["source:dir:full_at"]
    assert after_delta["source:dir"] >= after_full["source:dir"]

    full = ldap_env.run("plan", "--full", "--format", "json")
    assert _ops(full.stdout) == {("disable", keys["p4"])}
    applied = ldap_env.run("apply", "--yes", "--full")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert door.subjects[keys["p4"]]["access_allowed"] is False
    assert door.subjects[keys["p3"]]["access_allowed"] is True  # moved, still present
    assert ldap_env.cursors()["source:dir:full_at"] > after_full["source:dir:full_at"]
    assert ldap_env.run("plan", "--check").returncode == 0
