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

Apply (`ef45.session`, loaded only when a terminal is opened, with the HTTP client):
each part of a user is written whole, carrying the templates and the fields syncd does
not manage that the terminal holds, so a rename never wipes irises enrolled there.

Cards (`cards`, `without_cards`: `engine.order.CardRules`): the terminal refuses a card
another user holds, disabled or not, so the engine orders card moves and clears a card
from a disabled record when someone who may pass gets it (`engine.cards`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from syncd.config import Ef45TargetConfig
from syncd.model import Enrollment, Person, Record, Status
from syncd.targets.base import (
    ClockSet,
    EventReader,
    TargetSession,
    TemplateReader,
    selects_by_groups,
)
from syncd.targets.ef45.lockstate import LockMemo, LockState, policy_of
from syncd.targets.ef45.templates import TEMPLATE_FIELDS, render_templates
from syncd.targets.ef45.wire import WIEGAND_FIELDS, card_hex
from syncd.targets.probing import ProbeReport
from syncd.targets.templates import TemplateLoader

if TYPE_CHECKING:  # the HTTP client loads when a terminal is opened, not for a plan
    import httpx

    from syncd.targets.ef45.client import Ef45Client
    from syncd.targets.ef45.observe import TemplateDigest

NO_CARDS: frozenset[str] = frozenset()


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
        return (
            self.kind,
            config.time_zone,
            config.record_version,
            config.card_bytes,
            config.match_until_format,
        )

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
        return moment.astimezone(self.zone).strftime(self.config.match_until_format)

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
        from syncd.targets.ef45.client import Ef45Client

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
            max_list_total_bytes=config.max_list_total_bytes,
            ca_file=config.ca_file,
        )

    async def observe(self) -> dict[str, Record]:
        """Return user uuid → record (render's shape) for every user the terminal holds.

        Templates are observed as render writes them (keyed digests, `template_version`)
        when the target was given `template_digest`, else left out. Takes the lock for
        the read; raise an Ef45Error if the terminal cannot be read completely (a partial
        list is never returned).
        """
        from syncd.targets.ef45.observe import observe_users

        async with self.client() as client:
            return await observe_users(
                client, card_bytes=self.config.card_bytes, template_digest=self.template_digest
            )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[TargetSession]:
        """Lock the terminal for one run; the lock is released on every way out."""
        from syncd.targets.ef45.session import Ef45Session

        async with self.client() as client:
            yield Ef45Session(client, name=self.name, templates=self.templates)

    # Capabilities (`syncd.targets.base`): thin, the work is in their own modules.

    @asynccontextmanager
    async def events(self) -> AsyncIterator[EventReader]:
        """Lock the terminal for reading its logs (`CollectsEvents`, `ef45.events`)."""
        from syncd.targets.ef45.events import Ef45EventReader

        async with self.client() as client:
            yield Ef45EventReader(
                client,
                name=self.name,
                zone=self.zone,
                delete_after=self.config.delete_logs_after_collect,
            )

    async def set_clock(self, now: datetime) -> ClockSet:
        """Set the terminal's clock to `now` in its zone (`HasClock`, `ef45.clock`)."""
        from syncd.targets.ef45.clock import set_terminal_clock

        async with self.client() as client:
            return await set_terminal_clock(client, self.zone, now)

    @property
    def template_version(self) -> int | None:
        """The configured record version (None: the terminal's own)."""
        return self.config.record_version or None

    @asynccontextmanager
    async def held_templates(self) -> AsyncIterator[TemplateReader]:
        """Lock the terminal for reading its templates (`HoldsTemplates`, `ef45.backfill`)."""
        from syncd.targets.ef45.backfill import Ef45TemplateReader

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
        from syncd.targets.ef45.probe import probe_ef45

        report = ProbeReport(self.name, self.kind)
        async with self.client() as client:
            await probe_ef45(client, self.config, report)
        return report
