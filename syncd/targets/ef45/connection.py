"""One locked session with one EF-45 terminal: HTTP, the device lock, retries of the lock.

`Ef45Connection` is the layer under `Ef45Client`: it sends its requests through one
`httpx.AsyncClient` per session, for `http://` and `https://` alike (https verified
against `ca_file`, else the system's trust store: `syncd.targets.tls`), takes the device
lock on `open` (POST /lock; PUT /lock to steal when allowed),
adds `lock_uid` to every locked call, sends one request at a time (the terminal is a
small embedded box), and releases the lock on `close`, whatever happened before. A
transport passed in (the test seam) belongs to the caller and is left open.

If a locked call is refused because the device forgot the lock (a status in
`LockPolicy.lost_statuses`, by default 401, 403 and 423: the real status is unverified;
never a body text), the lock is retaken once and the call retried once; if that fails
too, `LockLost`. Errors are those of `errors`.

Bounds (`syncd.targets.exchange`, as for CLUe): every request, connection and whole answer included,
ends within `timeout_s` (one overall deadline: a body dripping a byte a second cannot
stretch it); an answer body is read up to `max_body_bytes`, or `max_list_body_bytes` for
the paged lists (`call(..., listing=True)`), and past it the request fails with
Ef45Unavailable naming the terminal, method, path and limit. A lock uid the device hands
out must be a UUID (`ids.is_lock_uid`); any other is Ef45Unavailable, never stored.

Lock etiquette (see `lockstate`): a lock held by anyone else is taken only with
`steal_lock`; after an unanswered lock request of syncd's the session waits up to
`LockPolicy.wait_s` for the lock to come free, then LockBusy; a lock remembered in the
memo is released only when its syncd process provably ended.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
    wait_incrementing,
)

from syncd.errors import TemporaryTargetError
from syncd.owners import Owner, ProcessId
from syncd.targets.ef45.errors import (
    Ef45Error,
    Ef45Rejected,
    Ef45Unavailable,
    LockBusy,
    LockLost,
    error_for,
    is_lock_problem,
    redact,
    retry_after_header,
    secrets_of,
)
from syncd.targets.ef45.ids import is_lock_uid, shown
from syncd.targets.ef45.lockstate import LockMemo, LockPolicy, LockState, Verdict
from syncd.targets.ef45.records import seg
from syncd.targets.exchange import BodyTooLarge, BodyUndecodable, exchange
from syncd.targets.limits import MiB
from syncd.targets.tls import ssl_context, verification_failed

log = logging.getLogger(__name__)

API_PREFIX = "/1.0"
RELEASE_ATTEMPTS = 4
RELEASE_PAUSE_S = 0.05
Params = Mapping[str, str | int]
MAX_BODY_BYTES = 8 * MiB
"""Default bound of one answer's body (`max_body_bytes`)."""
MAX_LIST_BODY_BYTES = 64 * MiB
"""Default bound of one page of a list (`max_list_body_bytes`): a page of subjects or
faces carries templates, some kilobytes a user."""

_LIVE_UIDS: set[str] = set()
"""The lock uids this process's open sessions hold: a memo naming this very process
with one of them is a live lock, never a stale one."""


class Ef45Connection:
    """HTTP plus the device lock for one terminal; `open` and `close` bracket a session."""

    def __init__(
        self,
        *,
        base_url: str,
        timeout_s: float,
        steal_lock: bool,
        transport: httpx.AsyncBaseTransport | None,
        lock_memo: LockMemo | None = None,
        lock_policy: LockPolicy | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_list_body_bytes: int = MAX_LIST_BODY_BYTES,
        ca_file: Path | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.ca_file = ca_file
        self.max_body_bytes = max_body_bytes
        self.max_list_body_bytes = max_list_body_bytes
        self.lock_memo = lock_memo
        self.policy = lock_policy or LockPolicy()
        self.timeout_s = timeout_s
        self.steal_lock = steal_lock
        self._borrowed = transport
        self._http: httpx.AsyncClient | None = None
        self._lock_uid: str | None = None
        self._io = asyncio.Lock()
        self._relock = asyncio.Lock()

    @property
    def locked(self) -> bool:
        """Whether this session believes it holds the device lock."""
        return self._lock_uid is not None

    def _new_client(self) -> httpx.AsyncClient:
        """Return the session's HTTP client: no redirects, no cookies kept across
        sessions, `timeout_s` for each phase (the whole answer is bounded in `_send`)."""
        return httpx.AsyncClient(
            transport=self._borrowed,
            verify=ssl_context(self.ca_file),
            timeout=self.timeout_s,
            follow_redirects=False,
        )

    def where(self, method: str, label: str) -> str:
        """Return "EF-45 <url> <METHOD> /1.0<path>" for messages (never the query)."""
        return f"EF-45 {self.base_url} {method} {API_PREFIX}{label}"

    # -- session ---------------------------------------------------------------------

    async def open(self, *, lock: bool = True) -> None:
        """Open the HTTP client and take the lock; raise LockBusy or Ef45Unavailable.

        `lock=False` opens the client only: the paths that need no lock (`/version`)
        can then be read without touching the device's lock (`syncd validate --connect`).
        """
        self._http = self._new_client()
        if not lock:
            return
        try:
            self._lock_uid = await self._take_lock()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Release the lock if held and close the HTTP client. Never raises an Exception.

        A temporary failure of the release (5xx, timeout, dropped connection) is retried
        `RELEASE_ATTEMPTS` times in all: a lock left behind shuts every later session out.
        A release that still fails is logged: the device then keeps the lock until another
        client steals it or the device drops it.
        """
        try:
            if self._lock_uid is not None:
                await self._release_with_retries(self._lock_uid)
                self._forget(self._lock_uid)
        except Exception as exc:
            log.warning("%s: lock not released: %s", self.base_url, exc)
        finally:
            if self._lock_uid is not None:
                _LIVE_UIDS.discard(self._lock_uid)
            self._lock_uid = None
            http, self._http = self._http, None
            if http is not None and self._borrowed is None:
                await http.aclose()  # a borrowed transport stays open: its owner closes it

    async def unlock(self) -> str:
        """Release the terminal's lock whoever holds it (`syncd unlock`); return what was done.

        With a uid in the memo: DELETE /lock/{uid}. Without one, or when that uid no longer
        holds the lock (404): take it (PUT /lock) and release the new uid. The memo is
        cleared. Raise an Ef45Error if the device refuses or does not answer (a lock
        taken and not released is then in the memo, for the next run to release).
        """
        self._http = self._new_client()
        try:
            state = self._state()
            if state.held is not None:
                try:
                    await self._release_lock(state.held)
                    self._store(LockState())
                    return "released the lock syncd remembered (DELETE /lock/{uid})"
                except Ef45Rejected as exc:
                    if exc.status != 404:
                        raise
            uid = await self._steal_lock()
            self._store(LockState(held=uid, owner=self._owner()))
            await self._release_with_retries(uid)
            self._store(LockState())
            return "took the lock (PUT /lock) and released it (DELETE /lock/{uid})"
        finally:
            await self.close()

    def _state(self) -> LockState:
        text = self.lock_memo.recall() if self.lock_memo is not None else None
        return LockState.decode(text, source=self.base_url)

    def _store(self, state: LockState) -> None:
        if self.lock_memo is not None:
            self.lock_memo.remember(state.encode())

    def _forget(self, uid: str) -> None:
        """Clear the memo after releasing `uid`, unless it names another lock by now."""
        state = self._state()
        if state.held in (None, uid):
            self._store(state.released())

    def _owner(self) -> Owner:
        return self.lock_memo.owner() if self.lock_memo is not None else Owner(ProcessId.current())

    async def _take_lock(self) -> str:
        """Take the lock, minding what the memo says of an earlier holder (see lockstate)."""
        state = self._state()
        verdict = state.judge(self._owner(), _LIVE_UIDS)
        if verdict is Verdict.LIVE:
            raise LockBusy(
                f"{self.where('POST', '/lock')}: the lock is held by another running syncd "
                f"process ({state.holder_text()}); it releases it when done"
            )
        if verdict is Verdict.STALE and state.held is not None:
            await self._release_stale(state.held, state)
        kept = state if verdict is Verdict.FOREIGN else None
        return await self._request_and_record(state, kept)

    async def _request_and_record(self, state: LockState, kept: LockState | None) -> str:
        """Request the lock with the memo kept in step; on LockBusy restore `kept`, if any."""
        asking = state.requesting(self._owner(), time.time())
        self._store(asking)
        try:
            uid = await self._request_lock(asking)
        except LockBusy:
            self._store(kept if kept is not None else asking.refused())
            raise
        self._store(asking.taken(uid))
        _LIVE_UIDS.add(uid)
        return uid

    async def _release_stale(self, uid: str, state: LockState) -> None:
        """Release a lock an ended syncd session took and never released (by its uid)."""
        try:
            await self._release_lock(uid)
            log.warning(
                "%s: released a lock left by an ended syncd session (%s)",
                self.base_url,
                state.owner.describe() if state.owner else "unknown process",
            )
        except Ef45Error:
            pass  # that session's lock is gone already (or the device is down: seen next)

    async def _request_lock(self, state: LockState) -> str:
        label = "/lock"
        response = await self._send("POST", label, locked=False)
        if response.is_success:
            return self._lock_uid_of(response, "POST", label)
        if response.status_code >= 500:
            raise error_for(response.status_code, redact(response.text), self.where("POST", label))
        # Any 4xx on POST /lock means another client holds it (409 on the device per the
        # SDK; the emulator's other profile says 423).
        if self.steal_lock:
            log.warning("%s: lock held by another client; stealing it (steal_lock)", self.base_url)
            return await self._steal_lock()
        if state.lost_at is None:
            raise self._busy(response.status_code, "the lock is held by another client")
        return await self._wait_for_lock(response.status_code)

    async def _wait_for_lock(self, status: int) -> str:
        """Poll POST /lock with backoff for up to `policy.wait_s`; raise LockBusy after.

        A lock request of syncd's own went unanswered earlier, so the holder may be that
        lost request, whose uid nobody knows. It is never stolen (it may as well be an
        operator's): a device may drop an idle lock by itself (*unverified*), or an
        administrator releases it with `syncd unlock TARGET`.
        """
        policy = self.policy
        log.warning(
            "%s: lock busy after an unanswered lock request of syncd's; waiting up to %g s",
            self.base_url,
            policy.wait_s,
        )
        statuses = [status]  # each lock request's answer; the first is the busy one just seen

        async def ask_again() -> str | None:
            """One more lock request (the busy answer already seen counts as the first):
            the new uid, or None while the lock stays busy; raise on a 5xx."""
            if len(statuses) == 1:
                statuses.append(status)
                return None
            response = await self._send("POST", "/lock", locked=False)
            if response.is_success:
                return self._lock_uid_of(response, "POST", "/lock")
            if response.status_code >= 500:
                text = redact(response.text)
                raise error_for(response.status_code, text, self.where("POST", "/lock"))
            statuses.append(response.status_code)
            return None

        waiting = AsyncRetrying(
            stop=stop_before_delay(policy.wait_s),
            wait=wait_exponential(multiplier=policy.poll_s, max=policy.max_poll_s),
            retry=retry_if_result(lambda uid: uid is None),
            retry_error_callback=lambda _state: None,
            reraise=True,
        )
        uid: str | None = await waiting(ask_again)
        if uid is not None:
            return uid
        raise self._busy(
            statuses[-1],
            f"the lock stayed busy for {policy.wait_s:g} s after an unanswered lock request "
            "of syncd's (it may hold it; the device may drop it by itself, unverified); "
            f"to release it: syncd unlock {self._target_name()}",
        )

    async def _steal_lock(self) -> str:
        response = await self._send("PUT", "/lock", locked=False)
        if response.is_success:
            return self._lock_uid_of(response, "PUT", "/lock")
        error = error_for(response.status_code, redact(response.text), self.where("PUT", "/lock"))
        raise error if response.status_code >= 500 else LockBusy(str(error), status=error.status)

    def _target_name(self) -> str:
        return self.lock_memo.target if self.lock_memo is not None else "TARGET"

    def _busy(self, status: int, why: str) -> LockBusy:
        return LockBusy(
            f"{self.where('POST', '/lock')}: HTTP {status}: {why} (steal_lock is off)",
            status=status,
        )

    def _lock_uid_of(self, response: httpx.Response, method: str, label: str) -> str:
        uid = json_dict(response, self.where(method, label)).get("lock_uid")
        if uid is None or uid == "":
            raise Ef45Unavailable(f"{self.where(method, label)}: answer has no lock_uid")
        if not is_lock_uid(uid):
            raise Ef45Unavailable(
                f"{self.where(method, label)}: answer's lock_uid is not a UUID "
                f"(8-4-4-4-12 hex): {shown(uid)}; refused, not stored"
            )
        return str(uid)

    async def _release_with_retries(self, uid: str) -> None:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Ef45Unavailable),
            stop=stop_after_attempt(RELEASE_ATTEMPTS),
            wait=wait_incrementing(start=RELEASE_PAUSE_S, increment=RELEASE_PAUSE_S),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                try:
                    await self._release_lock(uid)
                except Ef45Rejected as exc:
                    if attempt.retry_state.attempt_number > 1 and exc.status == 404:
                        return  # an earlier try did release it; only its answer was lost
                    raise

    async def _release_lock(self, uid: str) -> None:
        label = "/lock/{lock_uid}"  # the uid itself stays out of messages
        response = await self._send("DELETE", f"/lock/{seg(uid)}", locked=False, label=label)
        if not response.is_success:
            text = redact(response.text, [uid])
            raise error_for(response.status_code, text, self.where("DELETE", label))

    async def _retake_lock(self, stale_uid: str | None, where: str) -> None:
        """Take the lock again after the device forgot `stale_uid`; raise LockLost if not."""
        async with self._relock:
            if self._lock_uid != stale_uid:
                return  # another call of this session retook it meanwhile
            log.warning("%s: the device dropped the lock; retaking it", where)
            if stale_uid is not None:
                _LIVE_UIDS.discard(stale_uid)
            self._lock_uid = None
            try:
                self._lock_uid = await self._request_and_record(self._state(), None)
            except Ef45Error as exc:
                raise LockLost(f"{where}: lock lost and not retaken: {exc}") from exc

    # -- requests --------------------------------------------------------------------

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Any = None,
        allow: tuple[int, ...] = (),
        listing: bool = False,
    ) -> httpx.Response:
        """Send one locked request and return its answer if 2xx or its status is in `allow`.

        Retake the lock and retry once if the device forgot it (LockLost if that fails);
        raise the `errors` exception for any other answer. `listing`: a page of a list,
        whose body may be up to `max_list_body_bytes` (else `max_body_bytes`).
        """
        where = self.where(method, path)
        secrets = secrets_of(body)
        uid = self._lock_uid
        response = await self._send(
            method, path, params=params, body=body, uid=uid, listing=listing
        )
        if self._lost_lock(response) or await self._unconfirmed_404(response, allow):
            await self._retake_lock(uid, where)
            response = await self._send(method, path, params=params, body=body, listing=listing)
            if self._lost_lock(response) or await self._unconfirmed_404(response, allow):
                raise LockLost(
                    f"{where}: HTTP {response.status_code}: lock refused again after retaking",
                    status=response.status_code,
                )
        if response.is_success or response.status_code in allow:
            return response
        error = error_for(response.status_code, self.remote_text(response, secrets), where)
        if isinstance(error, TemporaryTargetError):  # a 503 may say when to come back
            error.retry_after_s = retry_after_header(response.headers.get("Retry-After"))
        raise error

    async def get_json(self, path: str, *, params: Params | None = None) -> dict[str, Any]:
        """GET a locked path and return its JSON object."""
        return json_dict(await self.call("GET", path, params=params), self.where("GET", path))

    async def get_open_json(self, path: str) -> dict[str, Any]:
        """GET a path that needs no lock (`/version`) and return its JSON object."""
        response = await self._send("GET", path, locked=False)
        if not response.is_success:
            text = self.remote_text(response, ())
            raise error_for(response.status_code, text, self.where("GET", path))
        return json_dict(response, self.where("GET", path))

    def absent(self, response: httpx.Response) -> bool:
        """Whether an answer (2xx or 404) says the addressed record does not exist.

        The device answers a missing record with a bare 404 (`ef45-notes.md`): the status
        decides, never a body text.
        """
        return response.status_code == 404

    def remote_text(self, response: httpx.Response, secrets: Iterable[str]) -> str:
        """Return the answer's body, redacted (lock uid, request secrets) and cut short."""
        own = [self._lock_uid] if self._lock_uid else []
        return redact(response.text, [*secrets, *own])

    def _lost_lock(self, response: httpx.Response) -> bool:
        return is_lock_problem(response.status_code, self.policy.lost_statuses)

    async def _unconfirmed_404(self, response: httpx.Response, allow: tuple[int, ...]) -> bool:
        """Whether a 404 the caller would take as "absent" comes while the lock is not
        confirmed held.

        What a terminal answers a call whose lock it forgot is unverified, and a 404 is
        plausible: taken as "absent", it would count a leaver's delete or disable as done
        while the user keeps access. So before any 404 counts, one row of `/subjects` (a
        list, refused to no lock holder) is read under the same lock: a 4xx means the
        lock is gone (`docs/ef45-behaviour.md`); any other failure is raised as it is.
        """
        if response.status_code != 404 or 404 not in allow:
            return False
        path = "/subjects"
        check = await self._send("GET", path, params={"page": 1, "page_size": 1}, listing=True)
        if check.is_success:
            return False
        if 400 <= check.status_code < 500:
            return True
        raise error_for(check.status_code, self.remote_text(check, ()), self.where("GET", path))

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Any = None,
        locked: bool = True,
        uid: str | None = None,
        label: str | None = None,
        listing: bool = False,
    ) -> httpx.Response:
        if self._http is None:
            raise RuntimeError("Ef45Connection used outside its session (call open first)")
        query = dict(params or {})
        if locked:
            query["lock_uid"] = uid or self._lock_uid or ""
        where = self.where(method, label or path)
        limit = self.max_list_body_bytes if listing else self.max_body_bytes
        request = self._http.build_request(
            method, self.base_url + API_PREFIX + path, params=query, json=body
        )
        async with self._io:
            try:
                done = await exchange(self._http, request, limit=limit, total_s=self.timeout_s)
            except (TimeoutError, httpx.TimeoutException) as exc:
                raise Ef45Unavailable(
                    f"{where}: no answer within {self.timeout_s:g} s (timeout_s, the whole answer)"
                ) from exc
            except BodyTooLarge as exc:
                key = "max_list_body_bytes" if listing else "max_body_bytes"
                raise Ef45Unavailable(
                    f"{where}: answer body over the limit of {exc.limit} bytes ({key}); not read"
                ) from exc
            except BodyUndecodable as exc:
                raise Ef45Unavailable(f"{where}: {exc}; not read") from exc
            except httpx.HTTPError as exc:
                if verification_failed(exc):
                    raise Ef45Unavailable(
                        f"{where}: the terminal's TLS certificate is not trusted; for a "
                        "self-signed one, set ca_file to its PEM file"
                    ) from None
                detail = redact(str(exc), [self._lock_uid or "", uid or ""])
                raise Ef45Unavailable(f"{where}: {type(exc).__name__}: {detail}") from exc
        headers = done.response.headers.copy()
        headers.pop("content-encoding", None)  # the body is decoded already (exchange)
        return httpx.Response(
            done.response.status_code, headers=headers, content=done.body, request=request
        )


def json_of(response: httpx.Response, where: str) -> Any:
    """Return the answer's decoded JSON; raise Ef45Unavailable if it is not JSON."""
    try:
        return response.json()
    except ValueError:
        raise Ef45Unavailable(f"{where}: HTTP {response.status_code}: answer is not JSON") from None


def json_dict(response: httpx.Response, where: str) -> dict[str, Any]:
    """Return the answer's JSON object; raise Ef45Unavailable if it is not one."""
    data = json_of(response, where)
    if not isinstance(data, dict):
        raise Ef45Unavailable(f"{where}: HTTP {response.status_code}: answer is not an object")
    return data


def int_field(answer: Mapping[str, Any], name: str, where: str) -> int:
    """Return `answer[name]` as an int; raise Ef45Unavailable if it is missing or not one."""
    try:
        return int(answer[name])
    except (KeyError, TypeError, ValueError, OverflowError):
        raise Ef45Unavailable(f"{where}: answer has no integer {name}") from None
