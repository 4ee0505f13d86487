"""LdapSource against a real slapd: paging, limits, deltas, failures, secrets, TLS."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ldap3
import pytest

from syncd.config import LdapSourceConfig, SecretRef
from syncd.errors import ConfigError, RecordError, SourceError
from syncd.model import Person, RawRecord
from syncd.sources.base import RecordMapper
from syncd.sources.ldap import LdapSource
from tests.fixtures.ldap import CAPPED_DN, READER_DN, Slapd, load_people

PASSWORD_ENV = "SYNCD_TEST_LDAP_PASSWORD"


class FakeMapper:
    """Test-only RecordMapper: key from entryUUID, names from givenName/sn.

    `on_map(n, raw)` runs before the n-th record is mapped (1-based): tests use it to
    act on the server between pages.
    """

    attributes = frozenset({"givenName", "sn", "uid"})
    key_attributes = ("entryUUID",)
    member_of_dns: tuple[str, ...] = ()

    def __init__(self, on_map: Callable[[int, RawRecord], None] | None = None) -> None:
        self.on_map = on_map
        self.count = 0

    def map(self, raw: RawRecord) -> Person:
        self.count += 1
        if self.on_map is not None:
            self.on_map(self.count, raw)
        if not raw.get("givenName"):
            raise RecordError("givenName", "missing")
        return Person(
            key=str(_one(raw, "entryUUID")),
            first_name=str(_one(raw, "givenName")),
            last_name=str(_one(raw, "sn")),
            attributes=(("dn", str(_one(raw, "dn"))),),
        )

    def key_of(self, raw: RawRecord) -> str | None:
        value = raw.get("entryUUID")
        return str(_one(raw, "entryUUID")) if value else None

    def salvage(self, raw: RawRecord) -> tuple[str | None, bool | None, tuple[str, ...]]:
        return self.key_of(raw), False, ()  # no status, no validity: a defect holds


def _one(raw: RawRecord, name: str) -> Any:
    values = raw[name]
    assert isinstance(values, list) and len(values) == 1, (name, values)
    return values[0]


@pytest.fixture
def make_source(slapd: Slapd, monkeypatch: pytest.MonkeyPatch) -> Callable[..., LdapSource]:
    """Build an LdapSource on the session slapd, bound as the reader (password in env)."""
    monkeypatch.setenv(PASSWORD_ENV, slapd.passwords[READER_DN])

    def make(base_dn: str, mapper: RecordMapper | None = None, **overrides: Any) -> LdapSource:
        fields: dict[str, Any] = {
            "type": "ldap",
            "url": slapd.url,
            "bind_dn": READER_DN,
            "password": SecretRef(env=PASSWORD_ENV),
            "base_dn": base_dn,
            "filter": "(objectClass=inetOrgPerson)",
            "page_size": 50,
            "mapping": Path("unused.toml"),
            "connect_timeout_s": 2,
            "read_timeout_s": 5,
        }
        fields.update(overrides)
        return LdapSource("dir", LdapSourceConfig(**fields), mapper or FakeMapper())

    return make


def _dn(person: Person) -> str:
    return person.attribute("dn")


@pytest.mark.parametrize("page_size", [50, 100, 500])
def test_paging_reads_everyone_past_the_size_limit(
    slapd: Slapd, ldap_ou: str, make_source: Callable[..., LdapSource], page_size: int
) -> None:
    load_people(slapd, 250, ou=ldap_ou)
    read = make_source(ldap_ou, page_size=page_size).read()
    assert len(read.people) == 250
    assert read.complete and not read.problems and read.cursor
    assert {p.last_name for p in read.people.values()} == {f"Sn{n}" for n in range(250)}


def test_without_paging_the_server_limit_would_cut_the_read(slapd: Slapd, ldap_ou: str) -> None:
    """The premise of the test above: the reader's unpaged search stops at 100."""
    load_people(slapd, 150, ou=ldap_ou)
    conn = ldap3.Connection(slapd.url, READER_DN, slapd.passwords[READER_DN], auto_bind=True)
    conn.search(ldap_ou, "(objectClass=inetOrgPerson)", attributes=["uid"])
    assert conn.result["result"] == 4 and len(conn.entries) == 100
    conn.unbind()


def test_size_limit_mid_paged_search_is_a_source_error(
    slapd: Slapd,
    ldap_ou: str,
    make_source: Callable[..., LdapSource],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The capped account may page through 150 entries only: the server cuts at 150."""
    load_people(slapd, 250, ou=ldap_ou)
    monkeypatch.setenv(PASSWORD_ENV, slapd.passwords[CAPPED_DN])
    with pytest.raises(SourceError, match=r"\(page 4\) failed: .*sizeLimitExceeded") as caught:
        make_source(ldap_ou, bind_dn=CAPPED_DN).read()
    assert slapd.url in str(caught.value)


def test_delta_after_modify_rename_delete(
    slapd: Slapd, ldap_ou: str, make_source: Callable[..., LdapSource]
) -> None:
    dns = load_people(slapd, 5, ou=ldap_ou)
    time.sleep(1.1)  # modifyTimestamp has one-second grain: the marker is a later second
    (marker_dn,) = load_people(slapd, 1, ou=ldap_ou, prefix="marker")
    source = make_source(ldap_ou)
    first = source.read()
    by_dn = {_dn(p): p.key for p in first.people.values()}
    assert first.complete and first.cursor and len(first.people) == 6

    admin = slapd.admin()
    admin.modify(dns[1], {"sn": [(ldap3.MODIFY_REPLACE, ["Changed"])]})
    admin.modify_dn(dns[2], "uid=renamed")
    admin.delete(dns[3])
    admin.unbind()

    delta = source.read(cursor=first.cursor, full=False)
    assert not delta.complete
    # The cursor is inclusive (same-second changes), so the marker comes back too.
    assert set(delta.people) == {by_dn[dns[1]], by_dn[dns[2]], by_dn[marker_dn]}
    assert delta.people[by_dn[dns[1]]].last_name == "Changed"
    assert _dn(delta.people[by_dn[dns[2]]]) == f"uid=renamed,{ldap_ou}"
    assert delta.cursor is not None and delta.cursor >= first.cursor

    full = source.read(cursor=delta.cursor, full=True)
    assert full.complete
    assert set(full.people) == set(first.people) - {by_dn[dns[3]]}
    assert _dn(full.people[by_dn[dns[2]]]) == f"uid=renamed,{ldap_ou}"


def test_delta_without_cursor_is_a_full_read(
    slapd: Slapd, ldap_ou: str, make_source: Callable[..., LdapSource]
) -> None:
    load_people(slapd, 3, ou=ldap_ou)
    read = make_source(ldap_ou).read(cursor=None, full=False)
    assert read.complete and len(read.people) == 3


def test_malformed_cursor_is_refused(ldap_ou: str, make_source: Callable[..., LdapSource]) -> None:
    with pytest.raises(SourceError, match="cursor"):
        make_source(ldap_ou).read(cursor="2024)(uid=*", full=False)


def test_bind_failure_never_shows_the_password(
    ldap_ou: str, make_source: Callable[..., LdapSource], monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "Wr0ng-pa55word-Zz"
    monkeypatch.setenv(PASSWORD_ENV, wrong)
    with pytest.raises(SourceError) as caught:
        make_source(ldap_ou).read()
    message = str(caught.value)
    assert f"bind as {READER_DN} failed" in message and "invalidCredentials" in message
    assert wrong not in message and wrong not in repr(caught.value.__cause__)


def test_bind_dn_with_empty_password_is_refused(
    ldap_ou: str, make_source: Callable[..., LdapSource], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty simple-bind password is an unauthenticated bind: it must never be sent."""
    monkeypatch.setenv(PASSWORD_ENV, "")
    with pytest.raises(ConfigError, match="empty"):
        make_source(ldap_ou).read()


def test_unreachable_server_is_a_source_error(
    ldap_ou: str, make_source: Callable[..., LdapSource]
) -> None:
    from tests.fixtures.ldap import free_port

    with pytest.raises(SourceError, match=r"127\.0\.0\.1:\d+\): connect failed"):
        make_source(ldap_ou, url=f"ldap://127.0.0.1:{free_port()}").read()


def test_missing_base_dn_is_a_source_error(
    slapd: Slapd, make_source: Callable[..., LdapSource]
) -> None:
    with pytest.raises(SourceError, match="noSuchObject"):
        make_source(f"ou=nowhere,{slapd.base_dn}").read()


def test_empty_search_is_returned_as_is(
    ldap_ou: str, make_source: Callable[..., LdapSource]
) -> None:
    read = make_source(ldap_ou).read()
    assert read.people == {} and read.complete and read.problems == ()


def test_server_frozen_between_pages_is_a_source_error(
    slapd: Slapd, ldap_ou: str, make_source: Callable[..., LdapSource]
) -> None:
    load_people(slapd, 60, ou=ldap_ou)

    def freeze(n: int, _raw: RawRecord) -> None:
        if n == 25:  # on the second page of 20: the third request gets no answer
            slapd.process.send_signal(signal.SIGSTOP)

    source = make_source(ldap_ou, FakeMapper(freeze), page_size=20, read_timeout_s=1)
    try:
        with pytest.raises(SourceError, match=r"\(page 3\) failed: .*timed out"):
            source.read()
    finally:
        slapd.process.send_signal(signal.SIGCONT)


def test_server_killed_between_pages_is_a_source_error(
    slapd_factory: Callable[..., Slapd],
    make_source: Callable[..., LdapSource],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doomed = slapd_factory()
    ou = f"ou=people,{doomed.base_dn}"
    load_people(doomed, 60, ou=ou)
    monkeypatch.setenv(PASSWORD_ENV, doomed.passwords[READER_DN])

    def kill(n: int, _raw: RawRecord) -> None:
        if n == 25:
            doomed.process.kill()
            doomed.process.wait()

    source = make_source(ou, FakeMapper(kill), url=doomed.url, page_size=20)
    with pytest.raises(SourceError, match=r"\(page 3\) failed: .*(reset|closed|terminated)"):
        source.read()


@pytest.mark.parametrize("where", ["file", "env", "credential"])
def test_password_sources(
    slapd: Slapd,
    ldap_ou: str,
    make_source: Callable[..., LdapSource],
    where: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load_people(slapd, 2, ou=ldap_ou)
    secret = slapd.passwords[READER_DN]
    monkeypatch.delenv(PASSWORD_ENV)
    if where == "file":
        (tmp_path / "pw").write_text(secret + "\n")
        (tmp_path / "pw").chmod(0o600)
        ref = SecretRef(file=tmp_path / "pw")
    elif where == "env":
        monkeypatch.setenv("OTHER_LDAP_PW", secret)
        ref = SecretRef(env="OTHER_LDAP_PW")
    else:
        (tmp_path / "ldap-password").write_text(secret)
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
        ref = SecretRef(credential="ldap-password")
    assert len(make_source(ldap_ou, password=ref).read().people) == 2


def test_non_ascii_names_survive(
    slapd: Slapd, ldap_ou: str, make_source: Callable[..., LdapSource]
) -> None:
    admin = slapd.admin()
    names = [("Zoë", "Ångström"), ("Łukasz", "Żółkiewski"), ("Søren", "Kierkegård")]
    for given, sn in names:
        admin.add(f"cn={given} {sn},{ldap_ou}", ["inetOrgPerson"], {"givenName": given, "sn": sn})
    admin.unbind()
    people = make_source(ldap_ou).read().people.values()
    assert sorted((p.first_name, p.last_name) for p in people) == sorted(names)
    assert f"cn=Zoë Ångström,{ldap_ou}" in {_dn(p) for p in people}


def test_unmappable_record_is_a_problem_and_held(
    slapd: Slapd, ldap_ou: str, make_source: Callable[..., LdapSource]
) -> None:
    load_people(slapd, 3, ou=ldap_ou)
    admin = slapd.admin()
    bad_dn = f"cn=No Given,{ldap_ou}"
    admin.add(bad_dn, ["inetOrgPerson"], {"sn": "Given"})
    admin.search(bad_dn, "(objectClass=*)", ldap3.BASE, attributes=["entryUUID"])
    bad_key = str(admin.entries[0].entryUUID)
    admin.unbind()
    read = make_source(ldap_ou).read()
    assert len(read.people) == 3 and read.held == {bad_key}
    (problem,) = read.problems
    assert (problem.source, problem.where, problem.field) == ("dir", bad_dn, "givenName")


def test_raw_record_shape(
    slapd: Slapd, ldap_ou: str, make_source: Callable[..., LdapSource]
) -> None:
    (dn,) = load_people(slapd, 1, ou=ldap_ou)
    seen: list[RawRecord] = []
    make_source(ldap_ou, FakeMapper(lambda _n, raw: seen.append(raw))).read()
    (raw,) = seen
    assert raw["dn"] == [dn] and raw["givenName"] == ["Given0"] and raw["uid"] == ["p0"]
    assert set(raw) == {"dn", "givenName", "sn", "uid", "entryUUID", "modifyTimestamp"}


# -- TLS -------------------------------------------------------------------------------


def test_start_tls_verifies_the_server(
    slapd: Slapd, ldap_ou: str, make_source: Callable[..., LdapSource]
) -> None:
    assert slapd.tls is not None
    load_people(slapd, 2, ou=ldap_ou)
    with pytest.raises(SourceError, match=r"StartTLS failed: .*CERTIFICATE_VERIFY_FAILED"):
        make_source(ldap_ou, start_tls=True).read()
    read = make_source(ldap_ou, start_tls=True, ca_file=slapd.tls.ca_cert).read()
    assert len(read.people) == 2
    assert len(make_source(ldap_ou, start_tls=True, verify_tls=False).read().people) == 2


def test_ldaps_verifies_the_server(
    slapd: Slapd, ldap_ou: str, make_source: Callable[..., LdapSource]
) -> None:
    assert slapd.tls is not None
    load_people(slapd, 2, ou=ldap_ou)
    with pytest.raises(SourceError, match=r"connect failed: .*CERTIFICATE_VERIFY_FAILED"):
        make_source(ldap_ou, url=slapd.ldaps_url).read()
    read = make_source(ldap_ou, url=slapd.ldaps_url, ca_file=slapd.tls.ca_cert).read()
    assert len(read.people) == 2


def test_certificate_for_another_name_is_refused(
    slapd: Slapd, ldap_ou: str, make_source: Callable[..., LdapSource]
) -> None:
    """The CA is trusted but the certificate names 127.0.0.1/localhost, not this host."""
    assert slapd.tls is not None
    import socket

    hostname = socket.gethostname()
    try:
        socket.create_connection((hostname, slapd.port), timeout=1).close()
    except OSError:
        pytest.skip(f"{hostname} does not reach 127.0.0.1")
    url = f"ldap://{hostname}:{slapd.port}"
    with pytest.raises(SourceError):
        make_source(ldap_ou, url=url, start_tls=True, ca_file=slapd.tls.ca_cert).read()


def test_nested_groups_on_openldap_is_a_config_error() -> None:
    fields: dict[str, Any] = {"type": "ldap", "url": "ldap://127.0.0.1", "base_dn": "dc=x"}
    with pytest.raises(ValueError, match="nested_groups needs flavor"):
        LdapSourceConfig(**fields, mapping=Path("m.toml"), nested_groups=True)
    assert LdapSourceConfig(**fields, mapping=Path("m.toml"), flavor="ad", nested_groups=True)
