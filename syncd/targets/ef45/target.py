"""The EF-45 target: Person → one flat record (subject + user-info), and its apply.

Render (pure): `user_uuid` is the person's stable key, so a crash between the terminal's
success and the ledger commit is recovered by finding the user under the same uuid.
`first_name`/`last_name` are required non-empty by the terminal: each falls back to the
other, then to the key. `access_allowed` follows the status; `match_until` is the end of
validity as local wall time in the terminal's zone (the exact format the firmware
expects is *unverified*: ISO `YYYY-MM-DDTHH:MM:SS`, empty when open-ended). Wiegand
fields come from the mapping's attributes, -1 when not set (`wiegand_custom` goes on
the wire as a string, as the SDK sends it: "" for not set). `card` is the person's first
card as hexadecimal with a space every byte, padded to `card_bytes` (`00 AB CD EF`).

Apply: create → `create_user` (a user already present becomes an update); update and
disable → `update_user` with the parts whose fields changed, each part written whole
(`PUT` very likely replaces: `docs/ef45-behaviour.md`); delete → `delete_user` (already
absent counts as done); an update of a user removed by hand becomes a create, unless
the record is disabled (a leaver already gone stays gone). A subject
is never written without the eye templates the terminal holds: when the ledger has none
for this terminal (not yet back-filled, or of another record version), the terminal's
subject is read first and its templates, and every field syncd does not manage, are
carried over; faces are left alone unless the record's faces changed. So a rename never
wipes irises enrolled at the terminal; syncd removes templates from a terminal only by
deleting the user.

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
from syncd.targets.base import (
    ClockSet,
    EventReader,
    TargetSession,
    TemplateReader,
    selects_by_groups,
)
from syncd.targets.ef45.backfill import Ef45TemplateReader
from syncd.targets.ef45.client import Ef45Client, UnknownUser, UserExists
from syncd.targets.ef45.clock import set_terminal_clock
from syncd.targets.ef45.events import Ef45EventReader
from syncd.targets.ef45.lockstate import LockMemo, LockState, policy_of
from syncd.targets.ef45.observe import TemplateDigest, observe_users
from syncd.targets.ef45.probe import probe_ef45
from syncd.targets.ef45.templates import TEMPLATE_FIELDS, Resolved, render_templates, resolve
from syncd.targets.probing import ProbeReport
from syncd.targets.templates import EYE_FIELDS, TemplateLoader

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


def card_hex(card: int, card_bytes: int = 4) -> str:
    """Return `card` as the EF-45 writes it: upper-case hex bytes separated by spaces,
    left-padded with 00 bytes to `card_bytes` (0: as few bytes as the number needs)."""
    if card < 0:
        raise ValueError("card numbers are non-negative")
    raw = f"{card:X}"
    raw = raw.rjust(max(len(raw) + len(raw) % 2, 2 * card_bytes), "0")
    return " ".join(raw[i : i + 2] for i in range(0, len(raw), 2))


def wire_subject(subject: Record) -> dict[str, Any]:
    """Return a subject body as the SDK sends it: `wiegand_custom` as a string ("" for
    not set, -1 in the record)."""
    body = dict(subject)
    custom = body.get("wiegand_custom")
    if isinstance(custom, int):
        body["wiegand_custom"] = "" if custom == -1 else str(custom)
    return body


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
        template_digest: TemplateDigest | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.zone = ZoneInfo(config.time_zone)
        self._transport = transport
        self.templates = templates
        """Resolves template digests to bytes at apply (None: no key, no templates)."""
        self.lock_memo = lock_memo
        """Remembers this terminal's lock across processes (None: this process only)."""
        self.template_digest = template_digest
        """The ledger's keyed digest of a template's bytes, for observing templates the
        way render writes them (None: templates are not observed)."""

    @property
    def render_key(self) -> Hashable:
        """What render depends on besides the person: the zone and the record version."""
        config = self.config
        return (self.kind, config.time_zone, config.record_version, config.card_bytes)

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
            "card": card_hex(person.cards[0], self.config.card_bytes) if person.cards else "",
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

    def comparable(self, observed: Record, held: Record | None) -> Record:
        """Return `observed` without the template fields the `held` record lacks:
        templates enrolled at the terminal and not (yet) in the ledger are kept by every
        update, never removed, so they are no difference for a deep plan; a template the
        ledger holds and the terminal lacks or holds otherwise is one."""
        held = held or {}
        return {k: v for k, v in observed.items() if k not in TEMPLATE_FIELDS or k in held}

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
            lock_policy=policy_of(config),
            face_sub_id_param=config.face_sub_id_param,
            image_dir=config.image_dir,
            max_body_bytes=config.max_body_bytes,
            max_list_body_bytes=config.max_list_body_bytes,
            max_pages=config.max_pages,
            ca_file=config.ca_file,
        )

    async def observe(self) -> dict[str, Record]:
        """Return user uuid → record (render's shape) for every user the terminal holds.

        Templates are observed as render writes them (keyed digests, `template_version`)
        when the target was given `template_digest`, else left out. Takes the lock for
        the read; raise an Ef45Error if the terminal cannot be read completely (a partial
        list is never returned).
        """
        async with self.client() as client:
            return await observe_users(
                client, card_bytes=self.config.card_bytes, template_digest=self.template_digest
            )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[TargetSession]:
        """Lock the terminal for one run; the lock is released on every way out."""
        async with self.client() as client:
            yield Ef45Session(client, name=self.name, templates=self.templates)

    # Capabilities (`syncd.targets.base`): thin, the work is in their own modules.

    @asynccontextmanager
    async def events(self) -> AsyncIterator[EventReader]:
        """Lock the terminal for reading its logs (`CollectsEvents`, `ef45.events`)."""
        async with self.client() as client:
            yield Ef45EventReader(
                client,
                name=self.name,
                zone=self.zone,
                delete_after=self.config.delete_logs_after_collect,
            )

    async def set_clock(self, now: datetime) -> ClockSet:
        """Set the terminal's clock to `now` in its zone (`HasClock`, `ef45.clock`)."""
        async with self.client() as client:
            return await set_terminal_clock(client, self.zone, now)

    @property
    def template_version(self) -> int | None:
        """The configured record version (None: the terminal's own)."""
        return self.config.record_version or None

    @asynccontextmanager
    async def held_templates(self) -> AsyncIterator[TemplateReader]:
        """Lock the terminal for reading its templates (`HoldsTemplates`, `ef45.backfill`)."""
        async with self.client() as client:
            yield Ef45TemplateReader(client, page_size=self.config.page_size)

    async def check_reach(self) -> str:
        """Read `GET /version` (no lock needed) and say what syncd remembers of the
        terminal's lock (`Reachable`). The lock is never taken: a terminal tells who
        holds its lock only to a lock request, so only syncd's own memo is reported.
        Raise Ef45Unavailable if the terminal does not answer."""
        connection = self.client().connection
        await connection.open(lock=False)
        try:
            version = await connection.get_open_json("/version")
        finally:
            await connection.close()
        return f"version {str(version.get('version', '')) or '(empty)'}; {self._lock_line()}"

    def _lock_line(self) -> str:
        """Return what the lock memo says of the terminal's lock, as one phrase."""
        memo = self.lock_memo
        state = LockState.decode(memo.recall() if memo is not None else None)
        if state.held is None and not state.pending and state.lost_at is None:
            return "lock: none left by syncd (not taken to check)"
        return f"lock: {state.holder_text()} (`syncd unlock {self.name}` releases syncd's)"

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
            await self.client.create_user(wire_subject(subject), user_info, extra.faces or ())
        except UserExists:  # e.g. created before a crash, the ledger never told: update
            await self._write_whole(subject, user_info, extra.faces)

    async def _update(self, action: Action) -> None:
        subject, user_info = split_record(action.record)
        changed = {change.name for change in action.changes}
        extra = await self._templates(action)
        # Templates ride along whenever the subject is sent: a PUT that replaced the
        # whole subject must not drop them.
        subject.update(extra.subject)
        try:
            await self._write_whole(
                subject if changed & {*SUBJECT_FIELDS, *TEMPLATE_FIELDS} else None,
                user_info if changed & set(USER_INFO_FIELDS) else None,
                extra.faces if "faces" in changed else None,
            )
        except UnknownUser:  # deleted at the terminal by hand
            if not self.is_active(action.record):
                return  # a leaver already gone: nothing to disable, never re-created
            await self.client.create_user(wire_subject(subject), user_info, extra.faces or ())

    @staticmethod
    def is_active(record: Record) -> bool:
        """Return True if the record lets its person through."""
        return bool(record.get("access_allowed"))

    async def _write_whole(
        self,
        subject: dict[str, Any] | None,
        user_info: dict[str, Any] | None,
        faces: list[dict[str, Any]] | None,
    ) -> None:
        """Update an existing user, each part given whole (None: leave that part).

        A subject without both eye templates is first completed from the terminal's
        (read back): its templates and the fields syncd does not manage are carried,
        so the replacing PUT keeps them; a user info likewise keeps the terminal's fields
        syncd does not manage (`by_pass_card`, `job_code`, …). Raise UnknownUser if the
        user is absent.
        """
        if subject is not None and not all(f in subject for f in EYE_FIELDS.values()):
            current = await self.client.get_subject(_uuid(subject))
            if current is None:
                raise UnknownUser(f"{self.name}: no user {_uuid(subject)} to update")
            subject = carried(current, subject)
        if user_info is not None:
            info = await self.client.get_user_info(_uuid(user_info))
            user_info = carried(info, user_info) if info is not None else user_info
        await self.client.update_user(
            wire_subject(subject) if subject is not None else None, user_info, faces
        )

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


def carried(current: Record, subject: Record) -> dict[str, Any]:
    """Return `subject` over the terminal's `current` subject: every field `subject`
    leaves out (templates, image paths, …) keeps the terminal's value; the terminal's
    `record_version` is kept unless `subject` names one."""
    return {**current, **subject}


def _uuid(subject: Record) -> str:
    return str(subject["user_uuid"])


def split_record(record: Record) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the (subject, user-info) bodies of a flat EF-45 record."""
    subject = {name: record[name] for name in SUBJECT_FIELDS if name in record}
    user_info = {name: record[name] for name in USER_INFO_FIELDS if name in record}
    return subject, user_info
