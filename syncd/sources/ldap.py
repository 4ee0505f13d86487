"""The LDAP source: people from Active Directory or OpenLDAP, read with ldap3.

`LdapSource(name, config, mapping).read(cursor=…, full=…)` binds (simple bind, over
StartTLS or ldaps, certificates verified unless `verify_tls = false`), searches with the
Simple Paged Results control on every request, hands each entry to the mapping as a raw
record and returns a `SourceRead`.

Raw records are `dict[str, list[str | bytes]]`: the attribute names as the mapping and
config spell them (LDAP names are case-insensitive; the server's spelling is folded onto
the requested one), plus `dn`. Values are UTF-8 text, except binary attributes
(objectGUID, objectSid, photos, certificates) and values that are not UTF-8: bytes.

A read either returns everything the search matched or raises `SourceError`; it never
returns part of a directory. Errors name the source and server, never the password:

    SourceError   bind refused, server unreachable or too slow, connection lost between
                  pages, TLS failure, base DN missing, sizeLimitExceeded /
                  adminLimitExceeded / timeLimitExceeded, a page without the paging
                  control (the server ignored paging, so completeness is unknowable)
    ConfigError   the password secret cannot be read, or a bind DN has no password

Cursors: AD's is the rootDSE highestCommittedUSN read before the search (falling back to
the highest uSNChanged seen); OpenLDAP's is the highest modifyTimestamp seen. A delta
read (`full=False` with a cursor) asks only for entries changed since, and is marked
`complete=False`; deletions are found by full reads. OpenLDAP caveat: an entry changed
while a full read runs, in an earlier second than a later-read entry, can be missed by
the next delta read; the periodic full read (`full_read_every_h`) repairs it.

An entry the mapping rejects, and entries that share a key, are decided by the rule every
source shares (`syncd.sources.salvage`): disabled when one says disabled or has an
unreadable validity, held otherwise, every entry reported by its DN.
"""

from __future__ import annotations

import contextlib
import math
import ssl
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any

from ldap3 import (
    ANONYMOUS,
    BASE,
    LEVEL,
    NO_ATTRIBUTES,
    NONE,
    SIMPLE,
    SUBTREE,
    SYNC,
    Connection,
    Server,
    Tls,
)
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from syncd.config import LdapSourceConfig
from syncd.errors import ConfigError, RecordError, SourceError, cut
from syncd.mapping.loader import normalize_dn
from syncd.sources.base import RecordMapper, SourceRead
from syncd.sources.ldap_ad import (
    FLAVORS,
    Flavor,
    RawAttributes,
    complete_ranges,
    highest_committed_usn,
)
from syncd.sources.salvage import Triage, key_label

PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"
BINARY_ATTRIBUTES = frozenset(
    {"objectguid", "objectsid", "jpegphoto", "thumbnailphoto", "usercertificate", "photo"}
)
_SCOPES = {"base": BASE, "one": LEVEL, "sub": SUBTREE}
# Result codes ldap3 does not raise for, even with raise_exceptions=True.
_LIMIT_RESULTS = {3: "timeLimitExceeded", 4: "sizeLimitExceeded", 11: "adminLimitExceeded"}

RawRecord = dict[str, list[str | bytes]]


# LDAP_MATCHING_RULE_IN_CHAIN: AD evaluates memberOf through nested groups.
IN_CHAIN = "1.2.840.113556.1.4.1941"


@dataclass
class _Collected:
    """What one read gathered so far; turned into a SourceRead only once the read ends."""

    triage: Triage
    stamp: str | None = None
    track_stamps: bool = True


class LdapSource:
    """An LDAP directory as a source of people (see the module docstring for the contract)."""

    def __init__(self, name: str, config: LdapSourceConfig, mapping: RecordMapper) -> None:
        self.name = name
        self.config = config
        self.mapping = mapping
        self.flavor: Flavor = FLAVORS[config.flavor]

    def read(self, *, cursor: str | None = None, full: bool = True) -> SourceRead:
        """Return everyone the search matches (full) or those changed since `cursor`.

        A delta read needs both `full=False` and a cursor; otherwise the read is full.
        Raise SourceError if the directory cannot be read completely; a record the
        mapping rejects becomes a SourceProblem, its key held or disabled (module doc).
        """
        delta = not full and cursor is not None
        password = self._password()
        progress = _Progress("prepare the search")
        with _failures(f"LDAP source {self.name!r} ({self.config.url})", progress, password):
            search_filter = self.config.filter
            if cursor is not None and delta:
                search_filter = self.flavor.delta_filter(self.config.filter, cursor)
            conn = self._connect(password, progress)
            try:
                collected = self._collect(conn, search_filter, progress)
            finally:
                with contextlib.suppress(LDAPException, OSError):
                    conn.unbind()
        triaged = collected.triage.result()
        return SourceRead(
            people=triaged.people,
            problems=triaged.problems,
            complete=not delta,
            held=triaged.held,
            disabled=triaged.disabled,
            cursor=collected.stamp or cursor,
        )

    def check_reach(self) -> str:
        """Bind and search for one entry (size limit 1, no attributes), read-only
        (`Reachable`); return what answered. Raise ConfigError for an unusable password,
        SourceError naming the step that failed (connect, StartTLS, bind, search)."""
        password = self._password()
        progress = _Progress("prepare the search")
        with _failures(f"LDAP source {self.name!r} ({self.config.url})", progress, password):
            conn = self._connect(password, progress)
            try:
                progress.stage = f"search of {self.config.base_dn} (size limit 1)"
                conn.search(
                    self.config.base_dn,
                    self.config.filter,
                    search_scope=_SCOPES[self.config.scope],
                    attributes=[NO_ATTRIBUTES],
                    size_limit=1,
                )
                found = sum(1 for e in conn.response or () if e.get("type") == "searchResEntry")
            finally:
                with contextlib.suppress(LDAPException, OSError):
                    conn.unbind()
        who = f"bound as {self.config.bind_dn}" if self.config.bind_dn else "anonymous bind"
        return f"{who}; search of {self.config.base_dn} answered ({found} entry read)"

    # -- connection ---------------------------------------------------------------------

    def _password(self) -> str:
        """Return the bind password ("" for an anonymous bind); ConfigError if unusable."""
        if not self.config.bind_dn:
            return ""
        if self.config.password is None:
            raise ConfigError(f"sources.{self.name}.password: required with bind_dn")
        password = self.config.password.read(f"sources.{self.name}.password")
        if not password:
            # An empty password makes a simple bind "unauthenticated": it succeeds as anyone.
            raise ConfigError(f"sources.{self.name}.password: the secret is empty")
        return password

    def _connect(self, password: str, progress: _Progress) -> Any:
        """Return an ldap3 connection, opened, upgraded to TLS if configured, and bound."""
        config = self.config
        if config.start_tls and config.url.lower().startswith("ldaps://"):
            raise ConfigError(f"sources.{self.name}: start_tls with an ldaps:// url")
        tls = Tls(
            validate=ssl.CERT_REQUIRED if config.verify_tls else ssl.CERT_NONE,
            ca_certs_file=str(config.ca_file) if config.ca_file else None,
            valid_names=[config.tls_server_name] if config.tls_server_name else None,
        )
        server = Server(
            config.url, tls=tls, get_info=NONE, connect_timeout=config.connect_timeout_s
        )
        conn = Connection(
            server,
            user=config.bind_dn or None,
            password=password or None,
            authentication=SIMPLE if config.bind_dn else ANONYMOUS,
            client_strategy=SYNC,
            raise_exceptions=True,
            auto_referrals=False,
            read_only=True,
            # ldap3 packs this into SO_RCVTIMEO as whole seconds: a float would crash it.
            receive_timeout=max(1, math.ceil(config.read_timeout_s)),
        )
        progress.stage = "connect"
        conn.open()
        if config.start_tls:
            progress.stage = "StartTLS"
            conn.start_tls()
        progress.stage = f"bind as {config.bind_dn}" if config.bind_dn else "anonymous bind"
        conn.bind()
        return conn

    # -- search -------------------------------------------------------------------------

    def _collect(self, conn: Any, search_filter: str, progress: _Progress) -> _Collected:
        """Search page by page, mapping each entry as it arrives; return what was read."""
        label = key_label(self.mapping.key_attributes)
        collected = _Collected(Triage(self.name, label, _place))
        if self.flavor.name == "ad":
            progress.stage = "read highestCommittedUSN from the rootDSE"
            # Read before searching: a change made during the search is then after it.
            collected.stamp = highest_committed_usn(conn)
            collected.track_stamps = collected.stamp is None
        wanted = self._wanted_attributes()
        nested = self._nested_members(conn, search_filter, progress)
        member_of = wanted.get("memberof", "memberOf")
        entries = self._entries(conn, search_filter, sorted(wanted.values()), progress)
        for dn, raw in entries:
            progress.stage = f"ranged read of {dn}"
            record = to_raw_record(dn, complete_ranges(conn, dn, raw), wanted)
            add_nested_groups(record, member_of, nested)
            self._take(record, collected)
        return collected

    def _nested_members(
        self, conn: Any, search_filter: str, progress: _Progress
    ) -> dict[str, frozenset[str]]:
        """Return group DN → normalized DNs of the people in it at any depth (AD only).

        One paged search per group a `member_of` rule names, with AD's in-chain matching
        rule: the server walks the nesting. Empty unless the source has nested_groups.
        """
        if not self.config.nested_groups:
            return {}
        members: dict[str, frozenset[str]] = {}
        for group in self.mapping.member_of_dns:
            chain = f"(memberOf:{IN_CHAIN}:={escape_filter_chars(group)})"
            entries = self._entries(conn, f"(&{search_filter}{chain})", [NO_ATTRIBUTES], progress)
            members[group] = frozenset(normalize_dn(dn) for dn, _ in entries)
        return members

    def _wanted_attributes(self) -> dict[str, str]:
        """Return lower-cased name → requested spelling of every attribute to ask for."""
        names = [*self.mapping.attributes, *self.config.attributes]
        names += [self.flavor.key_attribute, self.flavor.stamp_attribute]
        return {name.lower(): name for name in names}

    def _entries(
        self, conn: Any, search_filter: str, attributes: list[str], progress: _Progress
    ) -> Iterator[tuple[str, RawAttributes]]:
        """Yield (dn, raw attributes) of every entry, one paged request at a time.

        Paging is critical: a server that cannot page refuses the search rather than
        answering with whatever fits under its size limit. Raise SourceError on a limit
        result or a page without the paging control.
        """
        cookie: bytes | None = None
        page = 0
        while True:
            page += 1
            progress.stage = f"search of {self.config.base_dn} (page {page})"
            conn.search(
                self.config.base_dn,
                search_filter,
                search_scope=_SCOPES[self.config.scope],
                attributes=attributes,
                paged_size=self.config.page_size,
                paged_criticality=True,
                paged_cookie=cookie,
            )
            _check_page(conn.result)
            # The page is fully received before the caller maps it (and may range-read).
            entries = [e for e in conn.response if e.get("type") == "searchResEntry"]
            cookie = _next_cookie(conn.result)
            for entry in entries:
                yield entry["dn"], entry["raw_attributes"]
            if not cookie:
                return

    def _take(self, record: RawRecord, collected: _Collected) -> None:
        """Map one raw record into `collected`, or record why it could not be."""
        dn = str(record["dn"][0])
        stamp = _first_text(record, self.flavor.stamp_attribute)
        if stamp is not None and collected.track_stamps:
            collected.stamp = self.flavor.later_stamp(collected.stamp, stamp)
        try:
            person = self.mapping.map(record)
        except RecordError as err:
            key, says, unreadable = self.mapping.salvage(record)
            salvaged = (key or self.flavor.held_key(record) or None, says, unreadable)
            collected.triage.defective(dn, salvaged, dn, err.field, err.message)
            return
        collected.triage.mapped(person, dn)


@dataclass
class _Progress:
    """The step a read is at, so that a failure says what failed ("bind as …")."""

    stage: str


@contextlib.contextmanager
def _failures(where: str, progress: _Progress, password: str) -> Iterator[None]:
    """Turn ldap3, socket and TLS errors into one SourceError naming `where` and the step.

    The password is scrubbed from the message in case a library ever echoes it; the
    original exception is dropped from the chain for the same reason.
    """
    try:
        yield
    except (LDAPException, OSError, SourceError) as exc:
        text = str(exc) if isinstance(exc, SourceError) else cut(f"{type(exc).__name__}: {exc}")
        if password:
            text = text.replace(password, "***")
        raise SourceError(f"{where}: {progress.stage} failed: {text}") from None


def _place(dn: Hashable) -> tuple[str, str]:
    """An entry is both located and named by its DN."""
    return str(dn), str(dn)


def _check_page(result: dict[str, Any]) -> None:
    """Raise SourceError if a page's result code says the search was cut short."""
    code = result.get("result", 0)
    if code == 0:
        return
    name = _LIMIT_RESULTS.get(code, result.get("description", str(code)))
    detail = result.get("message") or ""
    raise SourceError(f"the server cut the search short: {name} {detail}".strip())


def _next_cookie(result: dict[str, Any]) -> bytes:
    """Return the paging cookie of a page (empty: last page); SourceError if it has none."""
    control = (result.get("controls") or {}).get(PAGED_RESULTS_OID)
    if control is None:
        raise SourceError(
            "the page came back without the paged results control: "
            "the server ignored paging, so the read cannot be proven complete"
        )
    cookie: bytes = control["value"]["cookie"] or b""
    return cookie


def add_nested_groups(record: RawRecord, attribute: str, nested: dict[str, frozenset[str]]) -> None:
    """Add to `record`'s `attribute` each group of `nested` that holds the record's DN."""
    if not nested:
        return
    dn = normalize_dn(str(record["dn"][0]))
    values = record.setdefault(attribute, [])
    direct = {normalize_dn(str(v)) for v in values}
    for group, people in nested.items():
        if dn in people and normalize_dn(group) not in direct:
            values.append(group)


def to_raw_record(dn: str, raw: RawAttributes, wanted: dict[str, str]) -> RawRecord:
    """Return the raw record of one entry: requested names, decoded values, plus `dn`."""
    record: RawRecord = {"dn": [dn]}
    for returned, values in raw.items():
        name = wanted.get(returned.lower(), returned)
        record.setdefault(name, []).extend(_decode(name, bytes(v)) for v in values)
    return record


def _decode(name: str, value: bytes) -> str | bytes:
    """Return a value as text, unless its attribute is binary or it is not UTF-8."""
    if name.lower() in BINARY_ATTRIBUTES:
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


def _first_text(record: RawRecord, name: str) -> str | None:
    values = record.get(name) or []
    return values[0] if values and isinstance(values[0], str) else None
