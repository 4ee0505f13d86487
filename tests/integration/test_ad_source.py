"""LdapSource (flavor "ad") and the shipped active-directory mapping on a real Samba DC.

One DC for the module (Samba's ports are fixed), provisioned with five people in
OU=People, the door groups of the shipped mapping (the lab's holds a group that holds
a group), and a group of 1 600 contacts.

Range retrieval: Samba returns every value of `member` in one answer, never
`member;range=0-1499` as Windows does, so the big-group test proves only that a large
group is read completely; the ranged path itself is covered by tests/unit/test_ldap_ad.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ldap3
import pytest

from syncd.config import LdapSourceConfig, SecretRef, load_config, shipped_path
from syncd.emulators.ef45 import create_ef45_app
from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.faults import Faults
from syncd.emulators.server import EmulatorServer
from syncd.engine.run import ApplyOptions, Syncer
from syncd.errors import SourceError
from syncd.ledger import migrate
from syncd.ledger.store import create_ledger_engine
from syncd.mapping import load_mapping
from syncd.model import Person, RawRecord, Status
from syncd.sources.ldap import LdapSource
from tests.fixtures.samba import BASE_DN, SambaDC, samba_dc

# Samba listens on fixed ports: every test of this module runs in one xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("samba")]

PASSWORD_ENV = "SYNCD_TEST_AD_PASSWORD"
PEOPLE_OU = f"OU=People,{BASE_DN}"
GROUPS_OU = f"OU=Groups,{BASE_DN}"
BIG_GROUP = 1600
NEVER = 0x7FFFFFFFFFFFFFFF
CAROL_UNTIL = datetime(2030, 6, 30, 22, 0, tzinfo=UTC)
# UF_PASSWD_NOTREQD (0x20) | UF_NORMAL_ACCOUNT (0x200), plus ACCOUNTDISABLE (0x2) for bob.
ENABLED, DISABLED = 0x220, 0x222


def filetime(moment: datetime) -> int:
    """Return `moment` as a Windows FILETIME (100 ns ticks since 1601-01-01 UTC)."""
    return int((moment - datetime(1601, 1, 1, tzinfo=UTC)).total_seconds()) * 10_000_000


USERS: dict[str, dict[str, Any]] = {
    "alice": {"sn": "Archer", "userAccountControl": ENABLED, "accountExpires": 0},
    "bob": {"sn": "Baker", "userAccountControl": DISABLED, "accountExpires": NEVER},
    "carol": {
        "sn": "Clark",
        "userAccountControl": ENABLED,
        "accountExpires": filetime(CAROL_UNTIL),
    },
    "dave": {"sn": "Dunn", "userAccountControl": ENABLED, "accountExpires": NEVER},
    "erin": {"sn": "Ellis", "userAccountControl": ENABLED, "accountExpires": NEVER},
}


def _user_dn(name: str) -> str:
    return f"CN={name.title()} {USERS[name]['sn']},{PEOPLE_OU}"


def preload_ldif() -> str:
    """Return the LDIF of the test domain's OUs, people, door groups and big group."""
    entries = [
        f"dn: OU={ou},{BASE_DN}\nobjectClass: organizationalUnit\n"
        for ou in ("People", "Groups", "Bulk")
    ]
    for n, (name, attrs) in enumerate(USERS.items()):
        lines = [
            f"dn: {_user_dn(name)}",
            "objectClass: user",
            f"sAMAccountName: {name}",
            f"givenName: {name.title()}",
            f"mail: {name.title()}@Example.COM",
            f"employeeID: {1000 + n}",
            *(f"{key}: {value}" for key, value in attrs.items()),
        ]
        entries.append("\n".join(lines) + "\n")
    contacts = [f"CN=contact{n},OU=Bulk,{BASE_DN}" for n in range(BIG_GROUP)]
    entries += [f"dn: {dn}\nobjectClass: contact\nsn: Contact\n" for dn in contacts]
    groups = {  # a member group comes before the groups that hold it
        "Door Access - All": [_user_dn(n) for n in USERS],
        "Lab Interns": [_user_dn("dave")],
        "Lab Staff": [_user_dn("carol"), f"CN=Lab Interns,{GROUPS_OU}"],
        "Door Access - Lab": [_user_dn("alice"), f"CN=Lab Staff,{GROUPS_OU}"],
        "Big Group": contacts,
    }
    for cn, members in groups.items():
        member_lines = "".join(f"member: {m}\n" for m in members)
        account = cn.lower().replace(" ", "")
        entries.append(
            f"dn: CN={cn},{GROUPS_OU}\nobjectClass: group\nsAMAccountName: {account}\n"
            + member_lines
        )
    return "\n".join(entries)


@pytest.fixture(scope="module")
def dc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaDC]:
    """The module's Samba DC, provisioned and loaded (about 15 s)."""
    yield from samba_dc(tmp_path_factory, preload_ldif())


@pytest.fixture
def make_source(dc: SambaDC, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Build an AD LdapSource bound as Administrator (password from the environment)."""
    monkeypatch.setenv(PASSWORD_ENV, dc.admin_password)

    def make(mapper: Any = None, **overrides: Any) -> LdapSource:
        fields: dict[str, Any] = {
            "type": "ldap",
            "flavor": "ad",
            "url": dc.url,
            "bind_dn": dc.admin_dn,
            "password": SecretRef(env=PASSWORD_ENV),
            "base_dn": PEOPLE_OU,
            "filter": "(&(objectClass=user)(objectCategory=person))",
            "page_size": 2,  # several pages even for five people
            "mapping": shipped_path("mappings", "active-directory.toml"),
            "connect_timeout_s": 5,
            "read_timeout_s": 10,
        }
        fields.update(overrides)
        config = LdapSourceConfig(**fields)
        return LdapSource("ad", config, mapper or load_mapping(config.mapping))

    return make


def _guids(dc: SambaDC) -> dict[str, str]:
    """Return sAMAccountName → objectGUID as canonical UUID text, read independently."""
    conn = dc.admin()
    conn.search(PEOPLE_OU, "(objectClass=user)", attributes=["sAMAccountName", "objectGUID"])
    found = {
        e["raw_attributes"]["sAMAccountName"][0].decode(): str(
            uuid.UUID(bytes_le=e["raw_attributes"]["objectGUID"][0])
        )
        for e in conn.response
        if e.get("type") == "searchResEntry"
    }
    conn.unbind()
    return found


def _by_name(people: dict[str, Person]) -> dict[str, Person]:
    return {p.first_name.lower(): p for p in people.values()}


def test_shipped_mapping_reads_keys_status_validity_and_groups(
    dc: SambaDC, make_source: Any
) -> None:
    read = make_source().read()
    assert read.complete and not read.problems
    people = _by_name(dict(read.people))
    assert set(people) == set(USERS)
    guids = _guids(dc)
    for name, person in people.items():
        assert person.key == guids[name]
        assert person.key == str(uuid.UUID(person.key))  # canonical lower-case text
    assert people["bob"].status is Status.DISABLED
    assert people["alice"].status is Status.ACTIVE
    assert people["carol"].valid_until == CAROL_UNTIL
    assert people["alice"].valid_until is None  # accountExpires 0
    assert people["bob"].valid_until is None  # accountExpires 0x7FFFFFFFFFFFFFFF
    assert people["alice"].email == "alice@example.com"
    assert people["alice"].groups == frozenset({"all", "lab"})
    assert people["bob"].groups == frozenset({"all"})
    assert read.cursor is not None and read.cursor.isdigit()


class MemberCounter:
    """A RecordMapper for groups: keeps every `member` value a read hands it."""

    attributes = frozenset({"cn", "member"})
    key_attributes = ("objectGUID",)
    member_of_dns: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.members: dict[str, list[str | bytes]] = {}

    def map(self, raw: RawRecord) -> Person:
        cn = str(raw["cn"][0])
        self.members[cn] = list(raw.get("member", []))
        return Person(
            key=str(uuid.UUID(bytes_le=bytes(raw["objectGUID"][0]))), first_name="", last_name=cn
        )


def test_group_over_1500_members_is_read_completely(make_source: Any) -> None:
    counter = MemberCounter()
    source = make_source(counter, base_dn=GROUPS_OU, filter="(objectClass=group)")
    read = source.read()
    assert len(read.people) == 5
    members = counter.members["Big Group"]
    assert len(members) == BIG_GROUP
    assert len(set(members)) == BIG_GROUP


def test_nested_groups_reach_people_in_groups_inside_the_named_group(make_source: Any) -> None:
    flat = _by_name(dict(make_source().read().people))
    read = make_source(nested_groups=True).read()
    nested = _by_name(dict(read.people))
    assert read.complete and not read.problems
    # Without nested_groups only direct members of "Door Access - Lab" get "lab".
    assert {n for n, p in flat.items() if "lab" in p.groups} == {"alice"}
    assert nested["alice"].groups == frozenset({"all", "lab"})  # direct
    assert nested["carol"].groups == frozenset({"all", "lab"})  # via Lab Staff
    assert nested["dave"].groups == frozenset({"all", "lab"})  # via Lab Interns, Lab Staff
    assert nested["erin"].groups == frozenset({"all"})
    assert nested["bob"].groups == frozenset({"all"})


def test_usn_delta_returns_only_changed_people_rename_keeps_the_key(
    dc: SambaDC, make_source: Any
) -> None:
    source = make_source()
    first = source.read()
    keys = {name: p.key for name, p in _by_name(dict(first.people)).items()}
    assert first.cursor is not None
    conn = dc.admin()
    conn.modify(_user_dn("dave"), {"sn": [(ldap3.MODIFY_REPLACE, ["Dunn-Smith"])]})
    conn.modify_dn(_user_dn("erin"), "CN=Erin Ellis-Moved")
    conn.unbind()

    delta = source.read(cursor=first.cursor, full=False)
    assert not delta.complete
    assert set(delta.people) == {keys["dave"], keys["erin"]}
    assert delta.people[keys["dave"]].last_name == "Dunn-Smith"
    assert delta.cursor is not None and int(delta.cursor) > int(first.cursor)
    # Nothing changed since: the next delta is empty, and a bad cursor is refused.
    assert source.read(cursor=delta.cursor, full=False).people == {}
    with pytest.raises(SourceError, match="not a uSNChanged number"):
        source.read(cursor="20260101000000Z", full=False)


def test_ldaps_and_starttls_verified_with_the_samba_ca(dc: SambaDC, make_source: Any) -> None:
    tls = {"ca_file": dc.ca_file, "tls_server_name": dc.tls_server_name}
    assert len(make_source(url=dc.ldaps_url, **tls).read().people) == len(USERS)
    assert len(make_source(start_tls=True, **tls).read().people) == len(USERS)
    # The certificate names DC1.example.com, not 127.0.0.1: refused without the name …
    with pytest.raises(SourceError, match="certificate") as caught:
        make_source(url=dc.ldaps_url, ca_file=dc.ca_file).read()
    assert dc.admin_password not in str(caught.value)
    # … and refused without Samba's CA.
    with pytest.raises(SourceError, match="certificate verify failed"):
        make_source(url=dc.ldaps_url, tls_server_name=dc.tls_server_name).read()


def test_account_expired_in_the_past_loses_access_on_the_terminal(
    dc: SambaDC, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ledger_url: str
) -> None:
    """AD → ledger → EF-45 emulator over real HTTP: an active account whose accountExpires
    is set in the past is a leaver (disabled), though AD still says it is enabled."""
    monkeypatch.setenv(PASSWORD_ENV, dc.admin_password)
    state = Ef45State()
    server = EmulatorServer(create_ef45_app(state, Faults())).start()
    conn = dc.admin()
    erin = _guids(dc)["erin"]
    # By GUID, not by name: an earlier test renames her, and a search by name can still
    # answer her old DN for a moment after the rename (seen under load in CI).
    erin_dn = f"<GUID={erin}>"
    try:
        config = tmp_path / "syncd.toml"
        config.write_text(
            f'[ledger]\nurl = "{ledger_url}"\n\n[sources.ad]\ntype = "ldap"\nflavor = "ad"\n'
            f'url = "{dc.url}"\nbind_dn = "{dc.admin_dn}"\npassword = {{env = "{PASSWORD_ENV}"}}\n'
            f'base_dn = "{PEOPLE_OU}"\nfilter = "(&(objectClass=user)(objectCategory=person))"\n'
            f'mapping = "{shipped_path("mappings", "active-directory.toml")}"\n\n'
            f'[targets.lobby]\ntype = "ef45"\nurl = "{server.url}"\n',
            encoding="utf-8",
        )
        ledger = create_ledger_engine(ledger_url)
        migrate.upgrade(ledger)
        ledger.dispose()
        _apply_ad(config)
        assert state.subjects[erin]["access_allowed"] is True
        past = datetime.now(UTC) - timedelta(days=1)
        conn.modify(erin_dn, {"accountExpires": [(ldap3.MODIFY_REPLACE, [filetime(past)])]})
        _apply_ad(config)
        assert state.subjects[erin]["access_allowed"] is False
        assert state.subjects[erin]["match_until"] != ""  # the expiry rides along too
    finally:
        conn.modify(erin_dn, {"accountExpires": [(ldap3.MODIFY_REPLACE, [NEVER])]})
        conn.unbind()
        server.stop()


def _apply_ad(config: Path) -> None:
    engine = Syncer.from_config(load_config(config))
    try:
        _, result, _ = engine.apply(ApplyOptions(full=True))
    finally:
        engine.close()
    assert result.count("failed") == 0 and result.count("applied") >= 1
