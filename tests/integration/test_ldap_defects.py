"""Defective and duplicate LDAP entries against a real slapd (issue 13, point 3).

The rule every source shares (`syncd.sources.salvage`): entries that share a key are all
reported by DN and disable the person when one says disabled, hold it otherwise; an entry
the mapping rejects disables when it says disabled or its end date cannot be read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from syncd.config import LdapSourceConfig, SecretRef
from syncd.mapping import loads_mapping
from syncd.model import Status
from syncd.sources.base import Decision, SourceRead
from syncd.sources.ldap import LdapSource
from tests.fixtures.ldap import READER_DN, Slapd, load_people

PASSWORD_ENV = "SYNCD_TEST_LDAP_DEFECTS_PASSWORD"


@pytest.fixture
def read_by_number(slapd: Slapd, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], SourceRead]:
    """Read an OU of the session slapd with BY_NUMBER, bound as the reader."""
    monkeypatch.setenv(PASSWORD_ENV, slapd.passwords[READER_DN])

    def read(base_dn: str) -> SourceRead:
        config = LdapSourceConfig(
            type="ldap",
            url=slapd.url,
            bind_dn=READER_DN,
            password=SecretRef(env=PASSWORD_ENV),
            base_dn=base_dn,
            filter="(objectClass=inetOrgPerson)",
            mapping=Path("unused.toml"),
            connect_timeout_s=2,
            read_timeout_s=5,
        )
        return LdapSource("dir", config, BY_NUMBER).read()

    return read


# A real mapping keyed by employeeNumber, which (unlike entryUUID) two entries may share.
BY_NUMBER = loads_mapping(
    """
    [fields]
    key = "{employeeNumber|first}"
    first_name = "{givenName|first}"
    last_name = "{sn|first}"
    status = "{employeeType|first|map:former=disabled,*=active|default:active}"
    valid_until = "{roomNumber|first|date_end:%Y-%m-%d}"
    cards = "{carLicense|decimal_card}"
    """,
    "by-number.toml",
)


def _add(slapd: Slapd, ou: str, uid: str, number: str, **extra: str) -> str:
    dn = f"uid={uid},{ou}"
    admin = slapd.admin()
    attributes = {"givenName": "G", "sn": uid, "cn": uid, "employeeNumber": number}
    admin.add(dn, ["inetOrgPerson"], {**attributes, **extra})
    admin.unbind()
    return dn


def test_two_entries_with_one_key_one_disabled_disable_and_both_are_reported(
    slapd: Slapd, ldap_ou: str, read_by_number: Callable[[str], SourceRead]
) -> None:
    load_people(slapd, 2, ou=ldap_ou)
    first = _add(slapd, ldap_ou, "twin-a", "777")
    second = _add(slapd, ldap_ou, "twin-b", "777", employeeType="former")
    read = read_by_number(ldap_ou)
    assert read.disabled == {"777"} and not read.held
    assert set(read.people) == {"10000", "10001"}
    assert sorted((p.where, p.field, p.decision) for p in read.problems) == [
        (first, "key (employeeNumber)", Decision.DISABLED),
        (second, "key (employeeNumber)", Decision.DISABLED),
    ]
    messages = {p.where: p.message for p in read.problems}
    assert messages[first] == f"duplicate key '777' (also {second}); another says disabled"
    assert messages[second] == f"duplicate key '777' (also {first}); this record says disabled"


def test_two_active_entries_with_one_key_are_held_and_both_are_reported(
    slapd: Slapd, ldap_ou: str, read_by_number: Callable[[str], SourceRead]
) -> None:
    load_people(slapd, 1, ou=ldap_ou)
    first = _add(slapd, ldap_ou, "twin-a", "777")
    second = _add(slapd, ldap_ou, "twin-b", "777", employeeType="staff")
    read = read_by_number(ldap_ou)
    assert read.held == {"777"} and not read.disabled and set(read.people) == {"10000"}
    assert sorted((p.where, p.decision) for p in read.problems) == [
        (first, Decision.HELD),
        (second, Decision.HELD),
    ]


def test_a_defective_entry_that_says_disabled_or_has_no_readable_end_disables(
    slapd: Slapd, ldap_ou: str, read_by_number: Callable[[str], SourceRead]
) -> None:
    load_people(slapd, 1, ou=ldap_ou)
    former = _add(slapd, ldap_ou, "former", "1", employeeType="former", carLicense="x1")
    expiring = _add(slapd, ldap_ou, "expiring", "2", roomNumber="next week")
    badge = _add(slapd, ldap_ou, "badge", "3", carLicense="x3")
    read = read_by_number(ldap_ou)
    assert read.disabled == {"1", "2"} and read.held == {"3"}
    assert read.people["10000"].status is Status.ACTIVE
    problems = {p.where: (p.message.split(";")[0], p.decision) for p in read.problems}
    assert problems == {
        former: ("status says disabled", Decision.DISABLED),
        expiring: ("valid_until unreadable, fail closed", Decision.DISABLED),
        badge: ("status active", Decision.HELD),
    }
