"""The CLUe target: Person → one flat auth record, and its apply on one CLUe place.

Render (pure, no clock): the record is the guide's auth body flattened to one level,
because the plan compares and redacts records field by field and a PIN nested inside
`auth.credentials` would reach a report as clear text. `auth_body(record, faces)` turns
it back into the body CLUe takes. Fields:

- `key` = the person's stable key (CLUe's `user.key`), `name` = display name (else key);
- `activeStatus` ACTIVE/INACTIVE from the person's status;
- `startTime`/`endTime` epoch ms from `valid_from`/`valid_until`. An open start is
  2000-01-01T00:00 in `time_zone` (a fixed value: "now" would change every run); an
  open end is `far_future` read in `time_zone`. An end not after the start is the
  person's mapping error (`RecordError`): the plan skips them with a note;
- `doorAccessType` ALL_DOOR when `doors` is not configured, else SPECIFIC with the
  sorted `doorIds` of the person's groups (none mapped: `RecordError`, never a guess);
  `scheduleType` SPECIFIC with `scheduleId` when `schedule_id` is set, else ALWAYS;
- `cards`: `{cardNumber: decimal text, formatType: card_format}`; `pin` digits or "";
- `faceImages`: digests of the person's "face_image" enrollments (sorted). Bytes never
  enter a record: apply resolves each digest through the `face_images` loader.

A disabled person always renders (window and doors fall back to harmless values), so
a leaver can always be switched to INACTIVE.

Apply: create → look the person's key up in the place's auths (read once per session,
`syncd.targets.clue.known`), update the auth found, else `create_auth`; remote id =
str(authId). So a create retried after an unknown outcome (timeout, drop, 5xx; in this
run, a later one, or after a crash between CLUe's success and the ledger commit) finds
the auth its first try made and never makes a second one, whether CLUe refuses a
duplicate `user.key` (409 / 400 "already exists": then read the list again and update)
or accepts it. Several auths with one key are reported (DuplicateAuths), never guessed
between. Update/disable → `update_auth` on the remote id (found by key when unknown;
re-created when removed by hand). Delete → `delete_auth`; a 404 counts as done only once
a fresh lookup by key confirms the auth is gone (a wrong path must never read as
"deleted").
Opening a session checks the API key and TLS with one events query; should either
still be refused later, the session stops calling CLUe and the remaining actions fail
at once with the same error.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from syncd.config import ClueTargetConfig
from syncd.errors import ConfigError, PermanentTargetError, RecordError
from syncd.model import Action, Enrollment, Op, Person, Record, Status
from syncd.targets.base import EventReader, TargetSession, selects_by_groups
from syncd.targets.clue.client import (
    AuthKeyExists,
    AuthListUnavailable,
    ClueClient,
    ClueError,
    ClueKeyRefused,
    ClueTlsError,
    ClueUnavailable,
    UnknownAuth,
)
from syncd.targets.clue.events import ClueEventReader
from syncd.targets.clue.ids import auth_id_text, shown
from syncd.targets.clue.known import KnownAuths
from syncd.targets.clue.probe import probe_clue
from syncd.targets.clue.ratelimit import RateLimitGate
from syncd.targets.clue.timing import EPOCH, epoch_ms
from syncd.targets.probing import ProbeReport

__all__ = ["EPOCH", "ClueSession", "ClueTarget", "FaceImageLoader", "auth_body", "epoch_ms"]

log = logging.getLogger(__name__)

FACE_MODALITY = "face_image"
OPEN_START = datetime(2000, 1, 1)  # wall time in the target's zone
DAY_MS = 24 * 3600 * 1000

FaceImageLoader = Callable[[str, str], Awaitable[bytes]]
"""Given (person key, enrollment digest), return the face image's JPEG bytes."""


def _zone(config: ClueTargetConfig, name: str) -> ZoneInfo:
    try:
        return ZoneInfo(config.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"targets.{name}.time_zone: unknown zone {config.time_zone!r}") from None


def _far_future(config: ClueTargetConfig, name: str, zone: ZoneInfo) -> datetime:
    try:
        moment = datetime.fromisoformat(config.far_future)
    except ValueError:
        raise ConfigError(f"targets.{name}.far_future: not an ISO date-time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


class ClueTarget:
    """One CLUe place, as configured in `[targets.NAME]` with `type = "clue"`."""

    kind = "clue"
    secret_fields = frozenset({"pin", "faceImages"})

    def __init__(
        self,
        name: str,
        config: ClueTargetConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        face_images: FaceImageLoader | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.zone = _zone(config, name)
        self.open_start = OPEN_START.replace(tzinfo=self.zone)
        self.open_end = _far_future(config, name, self.zone)
        self._transport = transport
        self._face_images = face_images
        self._gate = RateLimitGate()  # shared by this place's clients (ratelimit)

    @property
    def render_key(self) -> Hashable:
        """Render depends on this place's whole configuration: never shared with another."""
        return (self.kind, self.name)

    def selects(self, person: Person) -> bool:
        """Return True if the person's groups send them to this place."""
        return selects_by_groups(self.config.groups, person)

    def render(self, person: Person, enrollments: Sequence[Enrollment]) -> Record:
        """Return the flat auth record for `person` (pure).

        Raise RecordError (naming the field) if the validity window is empty, the PIN is
        not digits, or `doors` is configured and maps none of the person's groups.
        """
        active = person.status is Status.ACTIVE
        start, end = self._window(person, strict=active)
        door_ids = self._door_ids(person, strict=active)
        return {
            "key": person.key,
            "name": person.display_name or person.key,
            "activeStatus": "ACTIVE" if active else "INACTIVE",
            "startTime": start,
            "endTime": end,
            "doorAccessType": "SPECIFIC" if door_ids else "ALL_DOOR",
            "doorIds": door_ids,
            "scheduleType": "ALWAYS" if self.config.schedule_id is None else "SPECIFIC",
            "scheduleId": self.config.schedule_id,
            "cards": [
                {"cardNumber": str(card), "formatType": self.config.card_format}
                for card in person.cards
            ],
            "pin": _pin(person.pin, strict=active),
            "faceImages": sorted(e.digest for e in enrollments if e.modality == FACE_MODALITY),
        }

    def _window(self, person: Person, *, strict: bool) -> tuple[int, int]:
        start = epoch_ms(person.valid_from or self.open_start)
        end = epoch_ms(person.valid_until or self.open_end)
        if end > start:
            return start, end
        if strict:
            raise RecordError("valid_until", "access would end before it starts")
        return start, start + 1  # INACTIVE anyway: a valid body beats a refused one

    def _door_ids(self, person: Person, *, strict: bool) -> list[int]:
        doors = self.config.doors
        if not doors:
            return []
        ids = sorted({d for group in person.groups for d in doors.get(group, ())})
        if not ids and strict:
            raise RecordError("groups", f"no door of target {self.name} is mapped to them")
        if not ids:
            # INACTIVE anyway: SPECIFIC needs at least one door, so name every mapped one.
            ids = sorted({d for group_doors in doors.values() for d in group_doors})
        return ids

    def is_active(self, record: Record) -> bool:
        """Return True if the record lets its person through."""
        return record.get("activeStatus") == "ACTIVE"

    def events_read_from(self, cursor_ms: int | None, now_ms: int) -> int:
        """Return the epoch ms an events read starts from (never below 0).

        `cursor_ms` is the newest `eventAt` already stored (None: never collected). The
        read goes `events_overlap_s` back before it, because a device that was offline
        uploads its events late with their own, earlier times; what is read twice is
        stored once (the ledger's unique (target, logId)). An event uploaded later than
        the overlap after newer ones were stored is missed (*unverified*: how late CLUe
        devices upload is not documented; raise the overlap for sites that lose
        connectivity for long). The first read goes `events_lookback_days` back.
        """
        if cursor_ms is None:
            since = now_ms - self.config.events_lookback_days * DAY_MS
        else:
            since = min(cursor_ms, now_ms) - self.config.events_overlap_s * 1000
        return max(since, 0)

    def client(self, config: ClueTargetConfig | None = None) -> ClueClient:
        """Return a client for this place (API key read now; raise ConfigError if absent);
        `config` replaces the target's own (`syncd probe` tries the other path layout)."""
        config = config or self.config
        auth_path, auth_item_path = config.clue_auth_paths()
        return ClueClient(
            base_url=config.url,
            place_id=config.place_id,
            api_key=config.api_key.read(f"targets.{self.name}.api_key"),
            timeout_s=config.timeout_s,
            min_interval_ms=config.min_interval_ms,
            ca_file=config.ca_file,
            auth_path=auth_path,
            auth_item_path=auth_item_path,
            events_path=config.events_path,
            max_429_wait_s=config.max_429_wait_s,
            max_body_bytes=config.max_body_bytes,
            max_list_body_bytes=config.max_list_body_bytes,
            max_pages=config.max_pages,
            max_list_total_bytes=config.max_list_total_bytes,
            gate=self._gate,
            transport=self._transport,
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[TargetSession]:
        """Open the place's HTTP client for one run, checking key and TLS first.

        The check reads one page of the (documented) events query over the last second,
        so a refused key or an untrusted certificate fails the whole target at once
        (ClueKeyRefused, ClueTlsError) instead of every action in turn.
        """
        async with self.client() as client:
            await _check_access(client)
            yield ClueSession(client, self._face_images)

    def check_secrets(self) -> None:
        """Read the API key (`NeedsSecrets`); raise ConfigError naming
        `targets.NAME.api_key` if it cannot be read."""
        self.config.api_key.read(f"targets.{self.name}.api_key")

    async def check_reach(self) -> str:
        """Authenticate and read one auth of the list (page size 1), nothing else
        (`Reachable`). Raise ConfigError for an unreadable key, a ClueError if the place
        refuses the key or cannot be reached."""
        self.check_secrets()
        async with self.client() as client:
            async for _ in client.iter_auths(page_size=1):
                break
        place = str(self.config.place_id)
        collection = self.config.clue_auth_paths()[0].replace("{place_id}", place)
        return f"place {place}: API key accepted, auth list answered ({collection})"

    async def probe(self) -> ProbeReport:
        """Check syncd's assumptions on this place (`syncd probe`), leaving nothing behind."""
        report = ProbeReport(self.name, self.kind)
        await probe_clue(self.config, self.client, report)
        return report

    @asynccontextmanager
    async def events(self) -> AsyncIterator[EventReader]:
        """Open the place's HTTP client for reading its events (`CollectsEvents`)."""
        async with self.client() as client:
            yield ClueEventReader(client, name=self.name, read_from=self.events_read_from)


async def _check_access(client: ClueClient) -> None:
    now_ms = epoch_ms(datetime.now(UTC))
    async for _ in client.iter_events(since_ms=now_ms - 1000, until_ms=now_ms, page_size=1):
        return  # one page answered: key and certificate are good


def _pin(pin: str, *, strict: bool) -> str:
    if not pin or (pin.isascii() and pin.isdigit()):
        return pin
    if strict:
        raise RecordError("pin", "CLUe takes a PIN of digits only")  # never the PIN itself
    return ""


async def auth_body(
    record: Record, faces: Callable[[str], Awaitable[bytes]] | None
) -> dict[str, Any]:
    """Return the guide's auth body for a flat record; face digests become base64 images.

    Raise PermanentTargetError if the record names face images and `faces` is None.
    """
    credentials: dict[str, Any] = {"cards": list(record.get("cards", []))}
    if record.get("pin"):
        credentials["pin"] = record["pin"]
    digests = list(record.get("faceImages", []))
    if digests:
        if faces is None:
            raise PermanentTargetError("face images cannot be sent: no face image loader")
        credentials["faceImages"] = [base64.b64encode(await faces(d)).decode() for d in digests]
    auth: dict[str, Any] = {
        name: record[name]
        for name in ("activeStatus", "startTime", "endTime", "doorAccessType", "scheduleType")
    }
    if record.get("doorAccessType") == "SPECIFIC":
        auth["doorIds"] = list(record.get("doorIds", []))
    if record.get("scheduleType") == "SPECIFIC":
        auth["scheduleId"] = record.get("scheduleId")
    auth["credentials"] = credentials
    return {"user": {"key": record["key"], "name": record["name"]}, "auth": auth}


def _grants(body: Mapping[str, Any]) -> bool:
    """Whether an auth body lets its person through (ACTIVE)."""
    auth = body.get("auth")
    return isinstance(auth, Mapping) and auth.get("activeStatus") == "ACTIVE"


def _auth_id(remote_id: str | None) -> int | None:
    """Return the authId a stored remote id names, or None (then the auth is looked up
    by key). A stored value that is not one (from an older syncd, or edited by hand) is
    discarded with a warning, never put into a path."""
    found = auth_id_text(remote_id)
    if found is None and remote_id is not None:
        log.warning("stored CLUe remote id %s is not an authId: discarded", shown(remote_id))
    return found


class ClueSession:
    """The actions of one run on one CLUe place.

    No create is sent before the place's auths were looked up by the person's key
    (`KnownAuths`): an auth found is updated instead, so a retried create never makes
    a second auth, whatever CLUe does with a duplicate `user.key`.
    """

    def __init__(self, client: ClueClient, face_images: FaceImageLoader | None) -> None:
        self.client = client
        self._face_images = face_images
        self._known = KnownAuths(client)
        self._fatal: ClueError | None = None

    async def apply(self, action: Action) -> str | None:
        """Execute `action`; return the authId (as text) CLUe now holds (or held)."""
        if self._fatal is not None:
            raise type(self._fatal)(str(self._fatal), self._fatal.status)
        try:
            return await self._apply(action)
        except (ClueKeyRefused, ClueTlsError, AuthListUnavailable) as exc:
            self._fatal = exc  # every later call would fail the same way
            raise
        except ClueUnavailable:
            # The write may have been carried out all the same: the next lookup by key
            # must read what CLUe holds now, not this session's copy.
            self._known.forget_all()
            raise

    async def _apply(self, action: Action) -> str | None:
        if action.op is Op.DELETE:
            return await self._delete(action)
        body = await self._body(action)
        if action.op is Op.CREATE:
            return await self._create(action.person_key, body)
        return await self._update(action, body)

    async def _body(self, action: Action) -> dict[str, Any]:
        loader = self._face_images
        key = action.person_key

        async def faces(face_digest: str) -> bytes:
            assert loader is not None
            return await loader(key, face_digest)

        return await auth_body(action.record, faces if loader is not None else None)

    async def _create(self, key: str, body: Mapping[str, Any]) -> str:
        """Update the auth with user key `key` if the place holds one, else create it."""
        found = await self._known.one(key)
        if found is not None:
            return await self._overwrite(found.auth_id, body)
        try:
            created = await self.client.create_auth(body)
        except AuthKeyExists:
            # Made since the list was read (in the console, say): read it again.
            found = await self._known.one(key, fresh=True)
            if found is None:
                raise  # refused as existing, yet not listed: do not guess
            return await self._overwrite(found.auth_id, body)
        self._known.written(created)
        return str(created.auth_id)

    async def _overwrite(self, auth_id: int, body: Mapping[str, Any]) -> str:
        updated = await self.client.update_auth(auth_id, body)
        self._known.written(updated)
        return str(updated.auth_id)

    async def _update(self, action: Action, body: Mapping[str, Any]) -> str:
        written = await self._update_known(action, body)
        if not _grants(body):
            await self._close_duplicates(action.person_key, int(written), body)
        return written

    async def _update_known(self, action: Action, body: Mapping[str, Any]) -> str:
        auth_id = _auth_id(action.remote_id)
        if auth_id is None:
            return await self._create(action.person_key, body)  # looks the key up first
        try:
            return await self._overwrite(auth_id, body)
        except UnknownAuth:
            found = await self._known.one(action.person_key, fresh=True)
            if found is None:
                return await self._create(action.person_key, body)  # removed by hand
            if found.auth_id == auth_id:
                raise  # listed yet "unknown": a wrong item path, not a missing auth
            return await self._overwrite(found.auth_id, body)

    async def _close_duplicates(self, key: str, kept: int, body: Mapping[str, Any]) -> None:
        """Fail closed: give every other auth with user key `key` the same no-access
        `body` (duplicates made before syncd looked keys up, or by hand, would
        otherwise keep a leaver's access)."""
        for other in await self._known.lookup(key):
            if other.auth_id != kept:
                log.warning("CLUe auth %s duplicates user key %s: closed too", other.auth_id, key)
                await self._overwrite(other.auth_id, body)

    async def _delete(self, action: Action) -> str | None:
        auth_id = _auth_id(action.remote_id)
        if auth_id is None:
            found = await self._known.one(action.person_key)
            if found is None:
                return None  # nothing held (a malformed stored id is not kept either)
            auth_id = found.auth_id
        try:
            await self.client.delete_auth(auth_id)
        except UnknownAuth:
            found = await self._known.one(action.person_key, fresh=True)
            if found is None:
                return str(auth_id)  # confirmed gone
            if found.auth_id == auth_id:
                raise  # listed yet "unknown": a wrong item path, not a missing auth
            auth_id = found.auth_id
            await self.client.delete_auth(auth_id)
        self._known.removed(auth_id)
        for other in await self._known.lookup(action.person_key):  # fail closed: no duplicate
            log.warning(
                "CLUe auth %s duplicates user key %s: deleted too", other.auth_id, action.person_key
            )
            await self.client.delete_auth(other.auth_id)
            self._known.removed(other.auth_id)
        return str(auth_id)
