"""Async client for the Suprema CLUe cloud API: auths of one place, and its events.

    TargetError (syncd.errors)
    └── ClueError                      any failure talking to CLUe; `status` is the HTTP status
        ├── ClueUnavailable            + TemporaryTargetError: timeout, connection error, 408
        │   └── ClueServerError        5xx: CLUe is up, this request failed (record-level)
        │       └── ClueBadAnswer      a write answered with an unusable authId/user.key
        ├── ClueRateLimited            + TemporaryTargetError: 429 for max_429_wait_s, or
        │                              the place is still cooling off (target-level)
        ├── ClueKeyRefused             + PermanentTargetError: 401/403, the API key was refused
        ├── ClueTlsError               + PermanentTargetError: server certificate not trusted
        │                              (both target-level: every call would fail alike)
        ├── ClueRejected               + PermanentTargetError: 400 and other 4xx (server message)
        │   └── AuthListUnavailable    the auths list is missing (404/405) or does not page:
        │                              target-level (no lookup by key, so no create)
        ├── AuthKeyExists              + PermanentTargetError: user.key already in the place
        ├── UnknownAuth                + PermanentTargetError: no auth with that id (404)
        └── DuplicateAuths             + PermanentTargetError: several auths share a user.key

Contract:
- TLS verification is always on: against `ca_file` when given, else the system's trust
  store. There is no switch to turn it off.
- The API key goes in the `Authorization` header as `Bearer <key>` (unchanged when it
  already starts with "Bearer "). It is never logged and never part of a message.
- Writes (create, update, delete) start at least `min_interval_ms` apart: the vendor asks
  for 300 ms between calls during bulk enrolment.
- HTTP 429 is retried after `Retry-After` (seconds or an HTTP date, capped at
  `RETRY_AFTER_CAP_S` and at what is left of `max_429_wait_s`; 1, 2, 4 … s without one),
  up to `max_retries_429` times and never past `max_429_wait_s` after the first try; the
  write is sent again, so none is lost. A request that runs out closes the place's
  `RateLimitGate` (`syncd.targets.clue.ratelimit`): its later requests fail at once.
  Other failures are raised at once: the engine retries temporary errors on a later run.
- Every exchange is bounded (`syncd.targets.exchange`): at most `timeout_s` in all (a body
  that drips in cannot stretch it), at most `max_body_bytes` of body
  (`max_list_body_bytes` for auth list pages); over either: ClueUnavailable naming the
  request and the limit. Paging stops after the pages the first page's `total` implies
  (plus one: the list may grow while read), never after more than `max_pages`; a list
  that goes on, or a page with nothing new, is an error, never read as the whole list.
- Identifiers are checked (`syncd.targets.clue.ids`): a listed auth or event whose id
  or key is malformed (control characters, too long, out of range) is skipped with a
  warning naming the place; a write answered with one raises ClueBadAnswer.
- The service may answer HTTP 200 with `status: false` in the body; then the body's
  `code` decides, as if it were the HTTP status.

- A write whose outcome is unknown (ClueUnavailable: a timeout, a dropped connection,
  408 or 5xx) may have been carried out. The client never sends it again itself; the
  session (`syncd.targets.clue.target`) looks the auth up by key before any create.

Paths: the auths collection defaults to the newer guide's `/v1/places/{place_id}/auths`
(the older quick start has `/v1/be/places/…`); the events query to the quick start's
`/v1/be/events`, the only one documented with its parameters (`ClueTargetConfig`).

*Unverified* (the guides show create, "add, update and delete" by name, and the events
query): the item path (`{auths}/{auth_id}`), the update verb (PUT of the whole body), the
list (GET on the collection with `page`/`size`, 0-based) and the shape of its answer (a
`data` list with `total`, or a `data.content` page), and how a duplicate `user.key` is
answered (refused with 409, or 400 whose message says "already exists" — or accepted,
making a second auth: syncd never relies on the refusal).
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from tenacity import RetryError

from syncd.errors import cut
from syncd.targets.clue import ids
from syncd.targets.clue.errors import (
    AuthKeyExists,
    AuthListUnavailable,
    ClueBadAnswer,
    ClueError,
    ClueKeyRefused,
    ClueRateLimited,
    ClueRejected,
    ClueTlsError,
    ClueUnavailable,
    DuplicateAuths,
    NotFound,
    UnknownAuth,
    error_for_status,
)
from syncd.targets.clue.paging import PageCap, last_page
from syncd.targets.clue.ratelimit import RateLimitGate
from syncd.targets.clue.timing import (
    RETRY_AFTER_CAP_S,
    TooManyRequests,
    event_windows,
    rate_limit_policy,
    retry_after_s,
)
from syncd.targets.exchange import BodyTooLarge, BodyUndecodable, Exchanged, exchange
from syncd.targets.limits import ListBudget
from syncd.targets.tls import ssl_context, verification_failed

__all__ = [
    "RETRY_AFTER_CAP_S",
    "AuthKeyExists",
    "AuthListUnavailable",
    "ClueAuth",
    "ClueBadAnswer",
    "ClueClient",
    "ClueError",
    "ClueKeyRefused",
    "ClueRateLimited",
    "ClueRejected",
    "ClueTlsError",
    "ClueUnavailable",
    "DuplicateAuths",
    "UnknownAuth",
    "event_windows",
    "retry_after_s",
]

log = logging.getLogger(__name__)

MIB = 1024 * 1024


@dataclass(frozen=True)
class ClueAuth:
    """One auth as CLUe returns it: its id, the user key, and its `data` object without
    its credentials (`_slim`: a session keeps every auth of the place, and face images
    in each would make that copy as large as a peer cares to send).

    Equality and hash use `auth_id` and `user_key` only.
    """

    auth_id: int
    user_key: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def active(self) -> bool:
        """True when the auth's `activeStatus` is ACTIVE."""
        return bool(self._auth.get("activeStatus") == "ACTIVE")

    @property
    def last_modified_at(self) -> int | None:
        """`lastModifiedAt` in epoch milliseconds, if the answer had it."""
        value = self.raw.get("lastModifiedAt")
        return value if isinstance(value, int) else None

    @property
    def _auth(self) -> Mapping[str, Any]:
        auth = self.raw.get("auth")
        return auth if isinstance(auth, Mapping) else {}

    @classmethod
    def parse(cls, data: object) -> ClueAuth | str:
        """Return the ClueAuth of a response `data` object, or why it is unusable: no
        authId or user.key, or one that fails `syncd.targets.clue.ids`."""
        if not isinstance(data, Mapping):
            return f"not an object: {ids.shown(data)}"
        user = data.get("user")
        raw_id, raw_key = data.get("authId"), user.get("key") if isinstance(user, Mapping) else None
        auth_id, user_key = ids.auth_id(raw_id), ids.user_key(raw_key)
        if auth_id is None:
            return f"authId {ids.shown(raw_id)} is not a positive integer"
        if user_key is None:
            return f"user.key {ids.shown(raw_key)} is missing, too long or holds control characters"
        return cls(auth_id=auth_id, user_key=user_key, raw=_slim(data))

    @classmethod
    def from_data(cls, data: object) -> ClueAuth:
        """Return the ClueAuth of a write's answer `data`; raise ClueBadAnswer if unusable."""
        parsed = cls.parse(data)
        if isinstance(parsed, str):
            raise ClueBadAnswer(f"CLUe answered an auth syncd cannot use: {parsed}")
        return parsed


class ClueClient:
    """One CLUe place, through one httpx.AsyncClient opened by `async with`."""

    def __init__(
        self,
        *,
        base_url: str,
        place_id: int,
        api_key: str,
        timeout_s: float = 15.0,
        min_interval_ms: int = 300,
        ca_file: Path | None = None,
        auth_path: str = "/v1/places/{place_id}/auths",
        auth_item_path: str = "/v1/places/{place_id}/auths/{auth_id}",
        events_path: str = "/v1/be/events",
        max_retries_429: int = 8,
        max_429_wait_s: float = 60.0,
        max_body_bytes: int = 8 * MIB,
        max_list_body_bytes: int = 32 * MIB,
        max_pages: int = 1000,
        max_list_total_bytes: int = 1024 * MIB,
        gate: RateLimitGate | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._place_id = place_id
        self._authorization = api_key if api_key.startswith("Bearer ") else f"Bearer {api_key}"
        self._timeout_s = timeout_s
        self._timeout = httpx.Timeout(timeout_s)
        self._min_interval_s = min_interval_ms / 1000
        self._ca_file = ca_file
        self._auth_path = auth_path
        self._auth_item_path = auth_item_path
        self._events_path = events_path
        self._max_retries_429 = max_retries_429
        self._max_429_wait_s = max_429_wait_s
        self._max_body_bytes = max_body_bytes
        self._max_list_body_bytes = max_list_body_bytes
        self._max_pages = max_pages
        self._max_list_total_bytes = max_list_total_bytes
        self._read_bytes = 0
        """Bytes of answer bodies read so far (list walks spend from it)."""
        self._gate = gate or RateLimitGate()
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._write_lock = asyncio.Lock()
        self._last_write = -float("inf")

    def __repr__(self) -> str:
        return f"ClueClient(base_url={self._base_url!r}, place_id={self._place_id})"

    @property
    def place(self) -> str:
        """The place as warnings name it: "CLUe place ID at URL"."""
        return f"CLUe place {self._place_id} at {self._base_url}"

    async def __aenter__(self) -> ClueClient:
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            timeout=self._timeout,
            verify=ssl_context(self._ca_file),
            transport=self._transport,
            headers={
                "Authorization": self._authorization,
                "Accept": "*/*",
                "Content-Type": "application/json",
            },
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # --- auths ----------------------------------------------------------------------

    async def create_auth(self, body: Mapping[str, Any]) -> ClueAuth:
        """Create an auth from `body` (the guide's shape); return it with its new authId.

        Raise AuthKeyExists if `user.key` is taken, ClueRejected if the body is refused.
        """
        answer = await self._request("POST", self._collection(), json=body, write=True)
        return ClueAuth.from_data(answer.get("data"))

    async def update_auth(self, auth_id: int, body: Mapping[str, Any]) -> ClueAuth:
        """Replace auth `auth_id` with `body` (deactivate: `activeStatus` INACTIVE).

        Raise UnknownAuth if there is no such auth, ClueRejected if the body is refused.
        The answer's shape is *unverified*: an answer without the auth (the write was
        accepted) yields a ClueAuth built from `auth_id` and `body`.
        """
        path = self._item(auth_id)
        answer = await self._request("PUT", path, json=body, write=True, not_found=UnknownAuth)
        data = answer.get("data")
        if isinstance(data, Mapping) and "authId" in data:
            return ClueAuth.from_data(data)
        user = body.get("user")
        key = user.get("key") if isinstance(user, Mapping) else None
        return ClueAuth(auth_id=auth_id, user_key=str(key), raw={"authId": auth_id, **body})

    async def delete_auth(self, auth_id: int) -> None:
        """Delete auth `auth_id`; raise UnknownAuth if there is no such auth."""
        await self._request("DELETE", self._item(auth_id), write=True, not_found=UnknownAuth)

    async def find_auth_by_key(self, user_key: str) -> ClueAuth | None:
        """Return the auth whose user key is `user_key`, or None (reads the whole list)."""
        async for auth in self.iter_auths():
            if auth.user_key == user_key:
                return auth
        return None

    async def iter_auths(self, *, page_size: int = 100) -> AsyncIterator[ClueAuth]:
        """Yield every auth of the place, page by page (page 0-based).

        An auth whose authId or user.key is malformed is skipped with a warning. Raise
        AuthListUnavailable if the list path is missing (404, 405), the server does not
        advance through pages, or the list goes on past its page cap (a list cut short
        must never read as "these auths are gone").
        """
        seen: set[int] = set()
        cap = PageCap(self._max_pages)
        budget = ListBudget(self._max_list_total_bytes, f"{self.place}: the auth list",
                            AuthListUnavailable)  # fmt: skip
        page = read = 0
        while True:
            before = self._read_bytes
            answer = await self._list_page(page, page_size)
            budget.spend(self._read_bytes - before)
            items, total = _items(answer, AuthListUnavailable)
            parsed = [ClueAuth.parse(item) for item in items]
            fresh = [a for a in parsed if isinstance(a, ClueAuth) and a.auth_id not in seen]
            skipped = [why for why in parsed if isinstance(why, str)]
            if items and not fresh and not skipped:
                raise AuthListUnavailable(f"CLUe list paging did not advance at page {page}")
            for why in skipped:
                log.warning("%s: auth list page %d: an auth skipped: %s", self.place, page, why)
            for auth in fresh:
                seen.add(auth.auth_id)
                yield auth
            read += len(fresh) + len(skipped)  # distinct: a repeated auth is not progress
            if last_page(len(items), page_size, read, total):
                return
            if cap.exceeded(page, len(items), total):
                raise AuthListUnavailable(
                    f"{self.place}: the auth list did not end after {page + 1} pages "
                    f"({cap.describe(total)})"
                )
            page += 1

    async def _list_page(self, page: int, page_size: int) -> dict[str, Any]:
        params = {"page": page, "size": page_size}
        try:
            return await self._request("GET", self._collection(), params=params, listing=True)
        except ClueRejected as exc:
            if exc.status not in (404, 405):
                raise
            raise AuthListUnavailable(
                f"{exc}; syncd looks auths up by key in this list before it creates one "
                "(check api_base / auth_path)",
                exc.status,
            ) from None

    # --- events ---------------------------------------------------------------------

    async def iter_events(
        self,
        *,
        since_ms: int,
        until_ms: int,
        page_size: int = 200,
        event_types: Sequence[str] = (),
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield the place's events with `since_ms <= eventAt <= until_ms`, each once.

        The span is split into windows of at most 7 days (the API refuses longer ones),
        oldest first; each window is read page by page in ascending id order. An event
        seen twice (a window edge, a page shifted by a new event) is yielded once, by
        `logId`.
        """
        seen: set[str] = set()
        for start, end in event_windows(since_ms, until_ms):
            async for event in self._window_events(start, end, page_size, event_types, seen):
                yield event

    async def _window_events(
        self, start: int, end: int, page_size: int, event_types: Sequence[str], seen: set[str]
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield one window's events not in `seen` (by logId; adding theirs); one without
        a logId is always yielded (nothing to tell it apart by: never drop an event), one
        with a malformed logId never (skipped with a warning). Raise ClueUnavailable for
        paging that does not advance or goes on past its cap."""
        page = read = 0
        params: dict[str, Any] = {"startTime": start, "endTime": end, "size": page_size}
        params |= {"sort": "id,asc", "placeId": self._place_id}
        if event_types:
            params["filterEvents"] = ",".join(event_types)
        cap = PageCap(self._max_pages)
        budget = ListBudget(self._max_list_total_bytes, f"{self.place}: the events query",
                            ClueUnavailable)  # fmt: skip
        while True:
            before = self._read_bytes
            answer = await self._request("GET", self._events_path, params=params | {"page": page})
            budget.spend(self._read_bytes - before)
            items, total = _items(answer, ClueUnavailable)
            fresh = [item for item in items if self._fresh_event(item, page, seen)]
            if items and not fresh:
                raise ClueUnavailable(f"{self.place}: events paging did not advance at page {page}")
            for item in fresh:
                yield item
            read += len(items)
            if last_page(len(items), page_size, read, total):
                return
            if cap.exceeded(page, len(items), total):
                raise ClueUnavailable(
                    f"{self.place}: the events query did not end after {page + 1} pages "
                    f"({cap.describe(total)})"
                )
            page += 1

    def _fresh_event(self, item: object, page: int, seen: set[str]) -> bool:
        """True if `item` is an event to yield; note its logId in `seen`."""
        if not isinstance(item, dict):
            log.warning("%s: events page %d: not an object, skipped", self.place, page)
            return False
        raw = item.get("logId")
        if raw is None:
            return True
        log_id = ids.log_id(raw)
        if log_id is None:
            log.warning(
                "%s: events page %d: an event skipped: logId %s is too long or holds "
                "control characters",
                self.place,
                page,
                ids.shown(raw),
            )
            return False
        if log_id in seen:
            return False
        seen.add(log_id)
        return True

    # --- transport ------------------------------------------------------------------

    def _collection(self) -> str:
        return self._auth_path.format(place_id=self._place_id)

    def _item(self, auth_id: int) -> str:
        return self._auth_item_path.format(place_id=self._place_id, auth_id=auth_id)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        write: bool = False,
        not_found: NotFound | None = None,
        listing: bool = False,
    ) -> dict[str, Any]:
        """Send one request, riding out 429s for at most `max_429_wait_s`; return the
        decoded body or raise ClueError. `listing`: an auth list page (its own limit)."""
        what = f"{method} {path}"
        self._gate.check(what)
        began = time.monotonic()
        policy = rate_limit_policy(self._max_retries_429, self._max_429_wait_s, began)
        try:
            async for attempt in policy:
                with attempt:
                    if write:
                        await self._pace()
                    answer = await self._send(method, path, json, params, listing=listing)
                    if answer.response.status_code == 429:
                        header = answer.response.headers.get("Retry-After")
                        tries = attempt.retry_state.attempt_number
                        raise TooManyRequests(retry_after_s(header, tries - 1))
                    return _decode(answer, what, not_found)
        except RetryError:  # the 429s outlasted `max_retries_429` or `max_429_wait_s`
            tries = policy.statistics.get("attempt_number", 0)
        why = (
            f"CLUe answered 429 (rate limited) {tries} times in {time.monotonic() - began:.0f} s "
            f"(max_429_wait_s {self._max_429_wait_s:g})"
        )
        self._gate.close(self._max_429_wait_s, why)
        raise ClueRateLimited(f"{what}: {why}; the place's requests wait for the next run", 429)

    async def _pace(self) -> None:
        """Wait until `min_interval_ms` has passed since the previous write started."""
        async with self._write_lock:
            wait = self._last_write + self._min_interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_write = time.monotonic()

    async def _send(
        self,
        method: str,
        path: str,
        json: Mapping[str, Any] | None,
        params: Mapping[str, Any] | None,
        *,
        listing: bool,
    ) -> Exchanged:
        if self._http is None:
            raise RuntimeError("ClueClient used outside `async with`")
        what = f"{method} {path}"
        limit = self._max_list_body_bytes if listing else self._max_body_bytes
        request = self._http.build_request(method, path, json=json, params=params)
        try:
            answer = await exchange(self._http, request, limit=limit, total_s=self._timeout_s)
            self._read_bytes += len(answer.body)
            return answer
        except (httpx.TimeoutException, TimeoutError):
            raise ClueUnavailable(
                f"{what}: CLUe did not answer in full within timeout_s ({self._timeout_s:g} s)"
            ) from None
        except BodyTooLarge as exc:
            key = "max_list_body_bytes" if listing else "max_body_bytes"
            raise ClueUnavailable(
                f"{what}: {self.place} answered a body over {exc.limit} bytes ({key}); not read"
            ) from None
        except BodyUndecodable as exc:
            raise ClueUnavailable(f"{what}: {self.place}: {exc}") from None
        except httpx.TransportError as exc:
            if verification_failed(exc):
                raise ClueTlsError(
                    f"{what}: the CLUe server's TLS certificate is not trusted; if it is "
                    "signed by a private CA, set ca_file to that CA's PEM file"
                ) from None
            raise ClueUnavailable(f"{what}: cannot reach CLUe: {type(exc).__name__}") from None


def _decode(answer: Exchanged, what: str, not_found: NotFound | None) -> dict[str, Any]:
    """Return the JSON body of a successful answer; raise the ClueError its status means."""
    status = answer.response.status_code
    try:
        decoded: object = jsonlib.loads(answer.body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json takes
        decoded = None
    if not isinstance(decoded, dict):
        if status < 400:
            raise ClueUnavailable(f"{what}: CLUe answered {status} without a JSON object", status)
        decoded = {"message": answer.body[:1000].decode("utf-8", "replace")}
    body: dict[str, Any] = decoded
    if status < 400 and body.get("status") is False:
        # Some answers carry the failure in the body with HTTP 200.
        code = body.get("code")
        status = code if isinstance(code, int) and code >= 400 else 400
    if status < 400:
        return body
    raise error_for_status(status, what, _cut(body.get("message", "")), not_found)


def _items(answer: Mapping[str, Any], error: type[ClueError]) -> tuple[list[Any], int | None]:
    """Return (items, total) of a list answer: `data` list, or a `data.content` page;
    raise `error` if it holds no list."""
    data = answer.get("data")
    total = answer.get("total")
    if isinstance(data, Mapping):
        total = data.get("totalElements", total)
        data = data.get("content")
    if data is None:
        return [], total if isinstance(total, int) else None
    if not isinstance(data, list):
        raise error(f"CLUe answered a list without a data list: {_cut(answer)}")
    return data, total if isinstance(total, int) else None


SLIM_TEXT = 255
"""Longest text kept of a listed auth's other fields (a name, a status)."""


def _slim(data: Mapping[str, Any]) -> dict[str, Any]:
    """Return the parts of an auth's `data` syncd reads: authId, lastModifiedAt, user
    (key, name, userId) and auth without credentials; each a scalar, text cut short."""
    slim: dict[str, Any] = {k: _scalar(data.get(k)) for k in ("authId", "lastModifiedAt")}
    for part, keys in (("user", ("key", "name", "userId")), ("auth", _AUTH_KEYS)):
        inner = data.get(part)
        if isinstance(inner, Mapping):
            slim[part] = {k: _scalar(inner[k]) for k in keys if k in inner}
    return slim


_AUTH_KEYS = ("activeStatus", "startTime", "endTime", "doorAccessType", "scheduleType")


def _scalar(value: object) -> object:
    if isinstance(value, str):
        return value[:SLIM_TEXT]
    return value if isinstance(value, int | float | bool) or value is None else None


def _cut(value: object) -> str:
    return cut(value if isinstance(value, str) else repr(value))
