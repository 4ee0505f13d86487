"""AD mechanics of the LDAP source, on plain values: ranged retrieval and delta filters."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from syncd.errors import SourceError
from syncd.sources.ldap_ad import AD, OPENLDAP, complete_ranges

DN = "CN=big,OU=groups,DC=example,DC=com"


class RangedServer:
    """Answers `member;range=LOW-*` as AD does: at most `step` values per answer."""

    def __init__(self, values: list[bytes], step: int = 1500) -> None:
        self.values, self.step, self.response = values, step, [{}]
        self.asked: list[str] = []

    def search(self, dn: str, _filter: str, search_scope: Any, attributes: list[str]) -> None:
        (attribute,) = attributes
        self.asked.append(attribute)
        low = int(attribute.split("range=")[1].split("-")[0])
        high = low + self.step - 1
        name = f"member;range={low}-{'*' if high >= len(self.values) - 1 else high}"
        raw = {name: self.values[low : high + 1]}
        self.response = [{"type": "searchResEntry", "dn": dn, "raw_attributes": raw}]


def test_ranged_member_is_read_to_the_end() -> None:
    values = [f"CN=u{i}".encode() for i in range(4000)]
    server = RangedServer(values)
    first = {"member": [], "member;range=0-1499": values[:1500], "cn": [b"big"]}
    result = complete_ranges(server, DN, first)
    assert result["member"] == values and result["cn"] == [b"big"]
    assert server.asked == ["member;range=1500-*", "member;range=3000-*"]


def test_ranges_that_do_not_join_up_are_an_error() -> None:
    server = RangedServer([b"x"] * 3000)
    server.search = lambda *a, **k: setattr(  # type: ignore[method-assign]
        server,
        "response",
        [{"type": "searchResEntry", "raw_attributes": {"member;range=1600-*": []}}],
    )
    with pytest.raises(SourceError, match="1500"):
        complete_ranges(server, DN, {"member;range=0-1499": [b"x"] * 1500})


def test_delta_filters_and_cursor_checks() -> None:
    assert AD.delta_filter("(objectClass=user)", "41") == "(&(objectClass=user)(uSNChanged>=42))"
    assert OPENLDAP.delta_filter("objectClass=person", "20240102030405Z") == (
        "(&(objectClass=person)(modifyTimestamp>=20240102030405Z))"
    )
    for flavor, bad in ((AD, "1)(x=*"), (OPENLDAP, "2024*")):
        with pytest.raises(SourceError):
            flavor.delta_filter("(a=b)", bad)


def test_held_key_formats() -> None:
    guid = uuid.uuid4()
    assert AD.held_key({"objectGUID": [guid.bytes_le]}) == str(guid)
    assert OPENLDAP.held_key({"entryUUID": ["abc"]}) == "abc"
    assert AD.held_key({}) is None
