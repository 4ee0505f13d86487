"""What an LDAP read needs to know about each directory flavor, and AD's own mechanics.

- `Flavor`: the key and change-stamp attributes of Active Directory and OpenLDAP, how a
  delta filter is built from a stored cursor, and how a cursor is validated.
- `complete_ranges`: AD's ranged retrieval. AD returns at most MaxValRange values of a
  multi-valued attribute (1500 by default) as `member;range=0-1499`; the rest must be
  asked for by name (`member;range=1500-*`) until the server answers with a range ending
  in `*`. A group read without this silently loses members, so it is done for every
  entry that comes back with a `;range=` option, whatever the flavor.
- `highest_committed_usn`: AD's rootDSE change counter, read before a search so the
  cursor never runs ahead of a change the search might not have seen.

Every function raises ldap3's exceptions unchanged; `syncd.sources.ldap` turns them into
`SourceError` with the server's name.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ldap3 import BASE

from syncd.errors import SourceError

RawAttributes = dict[str, list[bytes]]
"""An entry's attributes as ldap3 returns them undecoded: name (with options) → values."""

_RANGE = re.compile(r"^(?P<name>[^;]+);(?:.*;)?range=(?P<low>\d+)-(?P<high>\d+|\*)$", re.I)
_GENERALIZED_TIME = re.compile(r"^\d{14}(?:[.,]\d+)?Z$")
_MAX_RANGE_ROUNDS = 10_000  # 15 million values at AD's default step: a loop, not a group


@dataclass(frozen=True, slots=True)
class Flavor:
    """The attributes that identify an entry and stamp its last change, per directory."""

    name: str
    key_attribute: str
    stamp_attribute: str

    def delta_filter(self, base_filter: str, cursor: str) -> str:
        """Given the configured filter and a stored cursor, return the delta filter.

        OpenLDAP: entries whose modifyTimestamp is at or after the cursor (inclusive, as
        timestamps have one-second grain and the cursor's second may hold more changes).
        AD: entries whose uSNChanged is above the cursor. Raise SourceError if the cursor
        is not one this flavor wrote (it would otherwise be pasted into a filter).
        """
        wrapped = base_filter if base_filter.startswith("(") else f"({base_filter})"
        if self.name == "ad":
            if not cursor.isdigit():
                raise SourceError(f"stored AD cursor {cursor!r} is not a uSNChanged number")
            return f"(&{wrapped}(uSNChanged>={int(cursor) + 1}))"
        if not _GENERALIZED_TIME.match(cursor):
            raise SourceError(f"stored OpenLDAP cursor {cursor!r} is not a generalized time")
        return f"(&{wrapped}(modifyTimestamp>={cursor}))"

    def later_stamp(self, current: str | None, seen: str) -> str:
        """Return whichever of two change stamps is later (None counts as earliest)."""
        if current is None:
            return seen
        if self.name == "ad":
            return seen if int(seen) > int(current) else current
        # Generalized times from one server share one format, so text order is time order.
        return seen if seen > current else current

    def held_key(self, record: Mapping[str, Sequence[str | bytes]]) -> str | None:
        """Return the key of a raw record the mapping rejected, in the mapping's form.

        entryUUID as text; objectGUID as the usual GUID string (bytes_le, as AD shows it).
        None when the record lacks the attribute or it is malformed.
        """
        values = record.get(self.key_attribute) or []
        if not values:
            return None
        value = values[0]
        if isinstance(value, bytes):
            return str(uuid.UUID(bytes_le=value)) if len(value) == 16 else None
        return value


AD = Flavor(name="ad", key_attribute="objectGUID", stamp_attribute="uSNChanged")
OPENLDAP = Flavor(name="openldap", key_attribute="entryUUID", stamp_attribute="modifyTimestamp")
FLAVORS = {"ad": AD, "openldap": OPENLDAP}


def complete_ranges(conn: Any, dn: str, raw: RawAttributes) -> RawAttributes:
    """Return `raw` with every ranged attribute (`member;range=0-1499`) read to its end.

    The result holds each such attribute under its plain name with all its values. Raise
    SourceError if the server's ranges do not join up (a value would be lost).
    """
    result: RawAttributes = {}
    for returned, values in raw.items():
        match = _RANGE.match(returned)
        if match is None:
            result.setdefault(returned, []).extend(values)
            continue
        name = match["name"]
        # AD also sends an empty plain `member` next to `member;range=…`: merged, not doubled.
        result.setdefault(name, []).extend(values)
        if match["high"] != "*":
            result[name].extend(_read_rest(conn, dn, name, int(match["high"]) + 1))
    return result


def _read_rest(conn: Any, dn: str, name: str, low: int) -> list[bytes]:
    """Read `name;range=low-*` and the ranges after it until one ends in `*`."""
    values: list[bytes] = []
    for _ in range(_MAX_RANGE_ROUNDS):
        conn.search(dn, "(objectClass=*)", search_scope=BASE, attributes=[f"{name};range={low}-*"])
        entries = [e for e in conn.response if e.get("type") == "searchResEntry"]
        if not entries:
            raise SourceError(f"{dn}: entry vanished while reading {name} from value {low}")
        step = _ranged_values(entries[0]["raw_attributes"], name, low)
        values.extend(step[0])
        if step[1] is None:
            return values
        low = step[1]
    raise SourceError(f"{dn}: {name} still ranged after {_MAX_RANGE_ROUNDS} reads")


def _ranged_values(raw: RawAttributes, name: str, low: int) -> tuple[list[bytes], int | None]:
    """Return the values of the range starting at `low`, and the next low (None: done)."""
    for returned, values in raw.items():
        match = _RANGE.match(returned)
        if match is None or match["name"].lower() != name.lower():
            continue
        if int(match["low"]) != low:
            raise SourceError(f"{name}: asked for values from {low}, got {returned}")
        return values, None if match["high"] == "*" else int(match["high"]) + 1
    raise SourceError(f"{name}: no range starting at {low} in the server's answer")


def highest_committed_usn(conn: Any) -> str | None:
    """Return AD's rootDSE highestCommittedUSN as text, or None if the server lacks it."""
    conn.search("", "(objectClass=*)", search_scope=BASE, attributes=["highestCommittedUSN"])
    for entry in conn.response:
        for name, values in entry.get("raw_attributes", {}).items():
            if name.lower() == "highestcommittedusn" and values:
                return bytes(values[0]).decode("ascii")
    return None
