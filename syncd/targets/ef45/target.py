"""The EF-45 target: Person → one flat record (subject + user-info), and its apply.

Render (pure): `user_uuid` is the person's stable key, so a crash between the terminal's
success and the ledger commit is recovered by finding the user under the same uuid.
`first_name`/`last_name` are required non-empty by the terminal: each falls back to the
other, then to the key. `access_allowed` follows the status; `match_until` is the end of
validity as local wall time in the terminal's zone (the exact format the firmware
expects is *unverified*: ISO `YYYY-MM-DDTHH:MM:SS`, empty when open-ended). Wiegand
fields come from the mapping's attributes, -1 when not set. `card` is the person's first
card as hexadecimal with a space every byte (`65 D8 A1 BD`).

Apply: create → `create_user` (a user already present becomes an update); update and
disable → `update_user` with only the parts whose fields changed; delete → `delete_user`
(already absent counts as done); an update of a user removed by hand becomes a create.

Cards (`cards`, `without_cards`: `engine.order.CardRules`): the terminal refuses a card
another user holds, disabled or not, so the engine orders card moves and clears a card
from a disabled record when someone who may pass gets it (`engine.cards`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from syncd.config import Ef45TargetConfig
from syncd.model import Action, Enrollment, Op, Person, Record, Status
from syncd.targets.base import TargetSession, selects_by_groups
from syncd.targets.ef45.client import Ef45Client, UnknownUser, UserExists
from syncd.targets.ef45.lockstate import LockMemo
from syncd.targets.ef45.observe import observe_users
from syncd.targets.ef45.probe import probe_ef45
from syncd.targets.ef45.templates import TEMPLATE_FIELDS, Resolved, render_templates, resolve
from syncd.targets.probing import ProbeReport
from syncd.targets.templates import TemplateLoader

SUBJECT_FIELDS = (
    "user_uuid",
    "first_name",
    "last_name",
    "access_allowed",
    "match_until",
    "wiegand_facility",
    "wiegand_site",
    "wiegand_code",
    "wiegand_custom",
)
USER_INFO_FIELDS = ("user_uuid", "card", "pin", "admin", "group_index")
WIEGAND_FIELDS = ("wiegand_facility", "wiegand_site", "wiegand_code", "wiegand_custom")
NO_CARDS: frozenset[str] = frozenset()


def card_hex(card: int) -> str:
    """Return `card` as the EF-45 writes it: upper-case hex bytes separated by spaces."""
    if card < 0:
        raise ValueError("card numbers are non-negative")
    raw = f"{card:X}"
    raw = raw if len(raw) % 2 == 0 else f"0{raw}"
    return " ".join(raw[i : i + 2] for i in range(0, len(raw), 2))


def _int_attribute(person: Person, name: str, default: int) -> int:
    value = person.attribute(name)
    try:
        return int(value) if value != "" else default
    except ValueError:
        return default


class Ef45Target:
    """One EF-45 terminal, as configured in `[targets.NAME]` with `type = "ef45"`."""

    kind = "ef45"
    secret_fields = frozenset({"pin", "left_eye_template", "right_eye_template", "faces"})

    def __init__(
        self,
        name: str,
        config: Ef45TargetConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        templates: TemplateLoader | None = None,
        lock_memo: LockMemo | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.zone = ZoneInfo(config.time_zone)
        self._transport = transport
        self.templates = templates
        """Resolves template digests to bytes at apply (None: no key, no templates)."""
        self.lock_memo = lock_memo
        """Remembers this terminal's lock across processes (None: this process only)."""

    @property
    def render_key(self) -> Hashable:
        """What render depends on besides the person: the zone and the record version."""
        return (self.kind, self.config.time_zone, self.config.record_version)

    def selects(self, person: Person) -> bool:
        """Return True if the person's groups send them to this terminal."""
        return selects_by_groups(self.config.groups, person)

    def render(self, person: Person, enrollments: Sequence[Enrollment]) -> Record:
        """Return the flat subject + user-info record for `person` (pure)."""
        first = person.first_name or person.last_name or person.key
        last = person.last_name or person.first_name or person.key
        record: dict[str, Any] = {
            "user_uuid": person.key,
            "first_name": first,
            "last_name": last,
            "access_allowed": person.status is Status.ACTIVE,
            "match_until": self._local(person.valid_until),
            "card": card_hex(person.cards[0]) if person.cards else "",
            "pin": person.pin,
            "admin": _int_attribute(person, "admin", 0),
            "group_index": _int_attribute(person, "group_index", 0),
        }
        for field in WIEGAND_FIELDS:
            record[field] = _int_attribute(person, field, -1)
        record.update(render_templates(enrollments, self.config.record_version))
        return record

    def _local(self, moment: datetime | None) -> str:
        if moment is None:
            return ""
        return moment.astimezone(self.zone).replace(tzinfo=None).isoformat(timespec="seconds")

    def is_active(self, record: Record) -> bool:
        """Return True if the record lets its person through."""
        return bool(record.get("access_allowed"))

    def cards(self, record: Record) -> frozenset[str]:
        """Return the card `record` holds on the terminal (none: empty), disabled or not:
        the terminal refuses a card another user holds (`engine.order`)."""
        card = record.get("card")
        return frozenset((str(card).upper(),)) if card else NO_CARDS

    def without_cards(self, record: Record, cards: frozenset[str]) -> Record:
        """Return `record` with its card cleared if it is one of `cards`."""
        if str(record.get("card") or "").upper() not in cards:
            return record
        return {**record, "card": ""}

    def client(self) -> Ef45Client:
        """Return a client for this terminal (not yet locked)."""
        config = self.config
        return Ef45Client(
            base_url=config.url,
            timeout_s=config.timeout_s,
            steal_lock=config.steal_lock,
            batch_min_version=config.batch_min_version,
            page_size=config.page_size,
            transport=self._transport,
            lock_memo=self.lock_memo,
        )

    async def observe(self) -> dict[str, Record]:
        """Return user uuid → record (render's shape) for every user the terminal holds.

        Takes the lock for the read; raise an Ef45Error if the terminal cannot be read
        completely (a partial list is never returned).
        """
        async with self.client() as client:
            return await observe_users(client)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[TargetSession]:
        """Lock the terminal for one run; the lock is released on every way out."""
        async with self.client() as client:
            yield Ef45Session(client, name=self.name, templates=self.templates)

    async def probe(self) -> ProbeReport:
        """Check syncd's assumptions on this terminal (`syncd probe`), leaving nothing
        behind; raise an Ef45Error only if the terminal cannot be locked or read."""
        report = ProbeReport(self.name, self.kind)
        async with self.client() as client:
            await probe_ef45(client, self.config, report)
        return report


class Ef45Session:
    """The actions of one run on one locked terminal."""

    def __init__(
        self, client: Ef45Client, *, name: str = "", templates: TemplateLoader | None = None
    ) -> None:
        self.client = client
        self.name = name or client.base_url
        self.templates = templates

    async def apply(self, action: Action) -> str | None:
        """Execute `action` on the terminal; return the user uuid it now holds (or had)."""
        uuid = action.person_key
        if action.op is Op.CREATE:
            await self._create(action)
        elif action.op is Op.DELETE:
            await self._delete(uuid)
        else:
            await self._update(action)
        return uuid

    async def _create(self, action: Action) -> None:
        subject, user_info = split_record(action.record)
        extra = await self._templates(action)
        subject.update(extra.subject)
        try:
            await self.client.create_user(subject, user_info, extra.faces or ())
        except UserExists:
            await self.client.update_user(subject, user_info, extra.faces)

    async def _update(self, action: Action) -> None:
        subject, user_info = split_record(action.record)
        changed = {change.name for change in action.changes}
        extra = await self._templates(action)
        # Templates ride along whenever the subject is sent: a PUT that replaced the
        # whole subject (unverified firmware behaviour) must not drop them.
        subject.update(extra.subject)
        try:
            await self.client.update_user(
                subject if changed & {*SUBJECT_FIELDS, *TEMPLATE_FIELDS} else None,
                user_info if changed & set(USER_INFO_FIELDS) else None,
                extra.faces if "faces" in changed else None,
            )
        except UnknownUser:
            await self.client.create_user(subject, user_info, extra.faces or ())

    async def _templates(self, action: Action) -> Resolved:
        return await resolve(
            action.record,
            action.person_key,
            loader=self.templates,
            session_version=self.client.record_version,
            target=self.name,
        )

    async def _delete(self, uuid: str) -> None:
        try:
            await self.client.delete_user(uuid)
        except UnknownUser:
            return


def split_record(record: Record) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the (subject, user-info) bodies of a flat EF-45 record."""
    subject = {name: record[name] for name in SUBJECT_FIELDS if name in record}
    user_info = {name: record[name] for name in USER_INFO_FIELDS if name in record}
    return subject, user_info
