"""The state of the CLUe emulator: one place, its auths, its events, its rate limiter.

Pure Python, no HTTP: `syncd.emulators.clue` turns requests into calls on `ClueState`,
and tests read and change the same object directly (inject access events, force 429s,
inspect what was written and when). Every public method takes `ClueState.lock`, because
uvicorn serves the app on a background thread while the test thread calls in.

A refused operation raises `ClueApiError(status, message)`; the app sends it as the
guide's error shape `{code, status: false, message}`.

Profiles (fields of `ClueState`, flags of `syncd emulate clue`), for behaviours the guides
leave open:
- `api_base`: "/v1" (default: auths at `/v1/places/{placeId}/auths`, the newer guide) or
  "/v1/be" (the older quick start); see `syncd.emulators.clue` for the events paths;
- `duplicate_keys`: what a `user.key` that already exists in the place gets, on create
  and on an update that would take another auth's key: "refuse" (default: 409 with a
  message containing "already exists"), "refuse-400" (400 with that message) or
  "accept" (a second auth with the same key is made, as nothing public rules out);
- `lose_answers(count, method, how)`: the next `count` requests of `method` are carried
  out in full and their answer is then lost ("drop": the connection closes midway;
  "503": a bare 503) — a create whose outcome the client cannot know.

Other choices where the real service's behaviour is *unverified*:
- events of our own making record every auth change: `AUTH_CREATED`, `AUTH_UPDATED`,
  `AUTH_DEACTIVATED` (an update from ACTIVE to INACTIVE), `AUTH_DELETED`, each with
  `authId`, `userId` (the user key), `userName`; access events (`DEV_FACE_AUTH_SUCCESS`,
  `DEV_DOOR_RELAY_ON`, …) come only from `add_access_event`;
- events are kept in arrival order; "sort by id" sorts by that order. `logId` is an
  opaque 20-character string (like the real ones, it does not sort), `localLogId` a
  counter;
- the time window is inclusive at both ends, and `endTime - startTime` may be at most
  7 days (longer: 400); a page `size` above `max_page_size` is cut to it.
"""

from __future__ import annotations

import base64
import hashlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from syncd.emulators import clue_validate

SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000
API_BASES = ("/v1", "/v1/be")
DUPLICATE_KEY_PROFILES = ("refuse", "refuse-400", "accept")
LOST_ANSWER_KINDS = frozenset({"drop", "503"})


class ClueApiError(Exception):
    """A request the emulator refuses: the HTTP status and the message it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _epoch_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class StoredAuth:
    """One auth as the emulator holds it; `auth` is the request's `auth` object, as sent."""

    auth_id: int
    user_id: int
    key: str
    name: str
    auth: dict[str, Any]
    last_modified_at: int

    @property
    def active(self) -> bool:
        """True when the auth's `activeStatus` is ACTIVE."""
        return self.auth.get("activeStatus") == "ACTIVE"


@dataclass(frozen=True)
class RequestRecord:
    """One request the app admitted past the API key check (monotonic seconds)."""

    at: float
    method: str
    path: str


class TokenBucket:
    """`capacity` requests per `window_s` seconds, refilled continuously."""

    def __init__(self, capacity: int, window_s: float, now: float) -> None:
        self.capacity = capacity
        self.rate = capacity / window_s
        self.tokens = float(capacity)
        self.updated = now

    def take(self, now: float) -> float:
        """Take one token: return 0.0 if granted, else the seconds until one is free."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass
class ClueState:
    """One CLUe place. Change settings and read fields freely; call methods for changes.

    `rate_limit` requests per `window_s` seconds per API key (None: no limit).
    `doors` names the place's doors; when empty, any door id is accepted.
    `clock_ms` gives "now" in epoch milliseconds (auth and event times); `monotonic`
    drives the rate limiter and the request log.
    """

    place_id: int
    api_key: str
    rate_limit: int | None = None
    window_s: float = 300.0
    doors: dict[int, str] = field(default_factory=dict)
    max_page_size: int = 1000
    seed: int = 0
    clock_ms: Callable[[], int] = _epoch_ms
    monotonic: Callable[[], float] = time.monotonic
    auths: dict[int, StoredAuth] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    requests: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=10_000))
    forced_429: int = 0
    forced_retry_after_s: int = 1
    api_base: str = "/v1"
    duplicate_keys: str = "refuse"
    lost_answers: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _next_auth_id: int = field(default=1000, init=False)
    _next_user_id: int = field(default=5000, init=False)
    _next_local_log_id: int = field(default=1, init=False)
    _buckets: dict[str, TokenBucket] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.api_base not in API_BASES:
            raise ValueError(f"api_base: one of {API_BASES}")
        if self.duplicate_keys not in DUPLICATE_KEY_PROFILES:
            raise ValueError(f"duplicate_keys: one of {DUPLICATE_KEY_PROFILES}")

    # --- access control -------------------------------------------------------------

    def authorize(self, header: str | None) -> bool:
        """True if the Authorization header is the API key, bare or as `Bearer <key>`."""
        return header is not None and header.removeprefix("Bearer ") == self.api_key

    def admit(self) -> float | None:
        """Count one request against the key: None if admitted, else the Retry-After seconds."""
        with self.lock:
            if self.forced_429 > 0:
                self.forced_429 -= 1
                return float(self.forced_retry_after_s)
            if not self.rate_limit:
                return None
            now = self.monotonic()
            bucket = self._buckets.get(self.api_key)
            if bucket is None:
                bucket = self._buckets[self.api_key] = TokenBucket(
                    self.rate_limit, self.window_s, now
                )
            wait = bucket.take(now)
            return None if wait == 0.0 else float(math.ceil(wait))

    def force_rate_limit(self, count: int, retry_after_s: int = 1) -> None:
        """Answer the next `count` authorized requests with 429 and this Retry-After."""
        with self.lock:
            self.forced_429 = count
            self.forced_retry_after_s = retry_after_s

    def lose_answers(self, count: int, *, method: str = "POST", how: str = "drop") -> None:
        """Carry out the next `count` requests of `method`, then lose their answers
        (`how`: "drop" closes the connection midway, "503" answers a bare 503)."""
        if how not in LOST_ANSWER_KINDS:
            raise ValueError(f"how: one of {sorted(LOST_ANSWER_KINDS)}")
        with self.lock:
            self.lost_answers.extend([(method.upper(), how)] * count)

    def take_lost_answer(self, method: str) -> str | None:
        """Return how the answer to this `method` request is lost (None: it is not)."""
        with self.lock:
            for index, (lost_method, how) in enumerate(self.lost_answers):
                if lost_method == method.upper():
                    del self.lost_answers[index]
                    return how
            return None

    def record_request(self, method: str, path: str) -> None:
        """Note an admitted request (tests measure pacing with these)."""
        with self.lock:
            self.requests.append(RequestRecord(self.monotonic(), method, path))

    def writes(self) -> list[RequestRecord]:
        """The recorded POST, PUT and DELETE requests, oldest first."""
        with self.lock:
            return [r for r in self.requests if r.method in {"POST", "PUT", "DELETE"}]

    def check_place(self, place_id: int) -> None:
        """Raise ClueApiError(404) unless `place_id` is this place."""
        if place_id != self.place_id:
            raise ClueApiError(404, f"place {place_id} not found")

    # --- auths ----------------------------------------------------------------------

    def create_auth(self, body: object) -> dict[str, Any]:
        """Validate and store a new auth; return the response `data` object.

        Raise ClueApiError 400 (invalid body, message naming each field) or 409 (the
        user.key already exists in this place).
        """
        user, auth = self._validated(body)
        with self.lock:
            self._refuse_taken_key(user["key"], None)
            auth_id, user_id = self._next_auth_id, self._next_user_id
            self._next_auth_id += 1
            self._next_user_id += 1
            stored = StoredAuth(
                auth_id, user_id, user["key"], user["name"], dict(auth), self.clock_ms()
            )
            self.auths[auth_id] = stored
            self._auth_event("AUTH_CREATED", stored)
            return self.render(stored)

    def update_auth(self, auth_id: int, body: object) -> dict[str, Any]:
        """Replace auth `auth_id` with `body` (same rules as create); return `data`.

        Raise ClueApiError 404 (no such auth), 400 (invalid body) or 409 (the new
        user.key belongs to another auth).
        """
        user, auth = self._validated(body)
        with self.lock:
            stored = self._get(auth_id)
            self._refuse_taken_key(user["key"], auth_id)
            was_active = stored.active
            stored.key, stored.name, stored.auth = user["key"], user["name"], dict(auth)
            stored.last_modified_at = self.clock_ms()
            deactivated = was_active and not stored.active
            self._auth_event("AUTH_DEACTIVATED" if deactivated else "AUTH_UPDATED", stored)
            return self.render(stored)

    def delete_auth(self, auth_id: int) -> None:
        """Remove auth `auth_id`; raise ClueApiError 404 if there is none."""
        with self.lock:
            stored = self._get(auth_id)
            del self.auths[auth_id]
            self._auth_event("AUTH_DELETED", stored)

    def get_auth(self, auth_id: int) -> dict[str, Any]:
        """Return the `data` object of auth `auth_id`; raise ClueApiError 404 if none."""
        with self.lock:
            return self.render(self._get(auth_id))

    def list_auths(self, page: int, size: int) -> tuple[list[dict[str, Any]], int]:
        """Return one page (0-based) of auths in authId order, and the total count."""
        with self.lock:
            ordered = [self.auths[i] for i in sorted(self.auths)]
            return [self.render(a) for a in _page(ordered, page, self._size(size))], len(ordered)

    def auth_by_key(self, key: str) -> StoredAuth | None:
        """The stored auth whose user key is `key`, if any (for tests)."""
        with self.lock:
            return next((a for a in self.auths.values() if a.key == key), None)

    def auths_by_key(self, key: str) -> list[StoredAuth]:
        """Every stored auth whose user key is `key`, in authId order (for tests)."""
        with self.lock:
            return [self.auths[i] for i in sorted(self.auths) if self.auths[i].key == key]

    def render(self, stored: StoredAuth) -> dict[str, Any]:
        """The response `data` object for `stored`, shaped like the guide's sample."""
        source = stored.auth
        credentials = dict(source.get("credentials") or {})
        # The guide echoes modes, faceImages and name; cards are echoed too so an observer
        # can compare them. A PIN is never echoed.
        credentials.pop("pin", None)
        credentials["modes"] = _modes(source.get("credentials") or {})
        credentials["name"] = stored.name
        auth = {k: v for k, v in source.items() if k not in {"doorIds", "credentials"}}
        auth["scheduleId"] = source.get("scheduleId")
        auth["doors"] = [
            {"doorId": d, "doorName": self.doors.get(d, f"Door {d}")}
            for d in source.get("doorIds") or []
        ]
        auth["credentials"] = credentials
        user = {
            "userId": stored.user_id,
            "key": stored.key,
            "name": stored.name,
            "realNameAuthStatusType": "REAL_NAME_AUTH_BEFORE",
        }
        return {
            "authId": stored.auth_id,
            "lastModifiedAt": stored.last_modified_at,
            "user": user,
            "auth": auth,
        }

    # --- events ---------------------------------------------------------------------

    def add_access_event(
        self,
        event_type: str,
        *,
        at_ms: int,
        auth_id: int | None = None,
        user_key: str | None = None,
        door_id: int | None = None,
        device_id: int | None = 1,
        local_log_id: int | None = None,
    ) -> dict[str, Any]:
        """Record a device event (test hook) at `at_ms`; return it as the API shows it.

        The user name is filled in from the auth with `user_key` when there is one.
        """
        with self.lock:
            stored = self.auth_by_key(user_key) if user_key else None
            fields: dict[str, Any] = {
                "deviceId": device_id,
                "doorId": door_id,
                "doorName": self.doors.get(door_id, f"Door {door_id}") if door_id else None,
                "authId": auth_id,
                "userId": user_key,
                "userName": stored.name if stored else None,
            }
            return self._add_event(event_type, at_ms, fields, local_log_id)

    def query_events(
        self,
        *,
        start_ms: int | None,
        end_ms: int | None,
        event_types: Sequence[str] = (),
        page: int = 0,
        size: int | None = None,
        descending: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        """Return one page (0-based) of matching events in id order, and the total count.

        Raise ClueApiError 400 if the window is reversed or longer than 7 days.
        """
        if start_ms is not None and end_ms is not None:
            if end_ms < start_ms:
                raise ClueApiError(400, "endTime: must not be before startTime")
            if end_ms - start_ms > SEVEN_DAYS_MS:
                raise ClueApiError(400, "startTime: must be within 7 days of endTime")
        with self.lock:
            chosen = [
                event
                for event in self.events
                if (start_ms is None or event["eventAt"] >= start_ms)
                and (end_ms is None or event["eventAt"] <= end_ms)
                and (not event_types or event["eventType"] in event_types)
            ]
        if descending:
            chosen.reverse()
        limit = self._size(size) if size is not None else max(len(chosen), 1)
        return [_public(e) for e in _page(chosen, page, limit)], len(chosen)

    # --- internals ------------------------------------------------------------------

    def _validated(self, body: object) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        found = clue_validate.problems(body)
        if not found and self.doors:
            doors = body["auth"].get("doorIds") or []  # type: ignore[index]
            found = [f"auth.doorIds: unknown door {d}" for d in doors if d not in self.doors]
        if found:
            raise ClueApiError(400, "; ".join(found))
        assert isinstance(body, Mapping)
        return body["user"], body["auth"]

    def _refuse_taken_key(self, key: str, own_id: int | None) -> None:
        if self.duplicate_keys == "accept":
            return
        holder = self.auth_by_key(key)
        if holder is not None and holder.auth_id != own_id:
            status = 400 if self.duplicate_keys == "refuse-400" else 409
            message = f"user.key {key!r} already exists in place {self.place_id}"
            raise ClueApiError(status, message)

    def _get(self, auth_id: int) -> StoredAuth:
        stored = self.auths.get(auth_id)
        if stored is None:
            raise ClueApiError(404, f"auth {auth_id} not found in place {self.place_id}")
        return stored

    def _size(self, size: int) -> int:
        if size < 1:
            raise ClueApiError(400, "size: must be at least 1")
        return min(size, self.max_page_size)

    def _auth_event(self, event_type: str, stored: StoredAuth) -> None:
        fields = {"authId": stored.auth_id, "userId": stored.key, "userName": stored.name}
        self._add_event(event_type, self.clock_ms(), fields, None)

    def _add_event(
        self, event_type: str, at_ms: int, fields: Mapping[str, Any], local_log_id: int | None
    ) -> dict[str, Any]:
        seq = len(self.events)
        digest = hashlib.sha256(f"{self.seed}:{self.place_id}:{seq}".encode()).digest()
        event: dict[str, Any] = {
            "_seq": seq,
            "logId": base64.urlsafe_b64encode(digest)[:20].decode(),
            "eventAt": at_ms,
            "placeId": self.place_id,
            **{k: v for k, v in fields.items() if v is not None},
            "localLogId": local_log_id if local_log_id is not None else self._next_local_log_id,
            "eventType": event_type,
        }
        self._next_local_log_id = max(self._next_local_log_id, event["localLogId"]) + 1
        self.events.append(event)
        return _public(event)


def _page(items: Sequence[Any], page: int, size: int) -> Sequence[Any]:
    if page < 0:
        raise ClueApiError(400, "page: must be 0 or more")
    return items[page * size : (page + 1) * size]


def _public(event: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if not k.startswith("_")}


def _modes(credentials: Mapping[str, Any]) -> list[str]:
    modes = []
    if credentials.get("faceImages"):
        modes.append("FACE")
    if credentials.get("cards"):
        modes.append("CARD")
    if credentials.get("pin") is not None:
        modes.append("PIN")
    return modes
