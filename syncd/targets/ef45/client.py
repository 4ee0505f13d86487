"""The async client of one CMITECH EF-45 terminal (REST, `http://{device}:9980/1.0`).

    async with Ef45Client(base_url="http://10.0.0.7:9980") as ef45:
        user = await ef45.get_user("3f0c…")
        await ef45.create_user(subject, user_info, faces)

A session takes the device lock on entry and always releases it on exit, also after an
error or a cancellation; it sends one request at a time. Users are written with the
batch `POST /user` / `DELETE /user/{uuid}` when the application version is at least
`batch_min_version`, else (or after a 404 on `POST /user`) with the separate `/subjects`,
`/user-info` and `/faces` calls. A user is identified by `user_uuid`, percent-encoded as
one path segment wherever a path names it (a key may hold `/`, `?`, `%`, spaces, é).
The device answers bare status codes (404 absent; 409 a uuid exists, or another user
holds the card): a 409 on a create is told apart by asking for the user, a 404 on
`DELETE /user/{uuid}` by the separate calls, which ask for the subject first. A user
without faces answers `GET /faces/{uuid}` with 404 (no faces), an empty log range
`GET /logs/from/to` with 404 (no entries). The faces' query parameter is
`face_sub_id_param` (the SDK's `subId`; the REST reference says `sub_id`).

Reads are bounded (`Ef45Connection`): each answer by `max_body_bytes` (a page of a list,
or one user's faces, by `max_list_body_bytes`), each list by `max_pages` and the totals
the terminal reports (`paging`). A face of one user read back without an integer
`sub_id` is skipped with a warning (it cannot be addressed).

`PUT /subjects/{uuid}` and `PUT /user-info/uuid/{uuid}` very likely replace the record
(the SDK always sends it whole): callers send whole records (`Ef45Session` does).

Exceptions (drawn in `syncd.targets.ef45.errors`, re-exported here):

    Ef45Error
    ├── Ef45Unavailable, Ef45ServerError, LockBusy, LockLost    temporary: retry later
    └── Ef45Rejected, CardInUse, FileMissing, DeviceFull, UnknownUser, UserExists  permanent
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from syncd.targets.ef45.connection import (
    MAX_BODY_BYTES,
    MAX_LIST_BODY_BYTES,
    Ef45Connection,
    Params,
    int_field,
    json_dict,
)
from syncd.targets.ef45.device import IMAGE_DIR, DeviceCalls
from syncd.targets.ef45.errors import (
    CardInUse,
    DeviceFull,
    Ef45Error,
    Ef45Rejected,
    Ef45ServerError,
    Ef45Unavailable,
    FileMissing,
    LockBusy,
    LockLost,
    UnknownUser,
    UserExists,
)
from syncd.targets.ef45.lockstate import LockMemo, LockPolicy
from syncd.targets.ef45.paging import MAX_LIST_TOTAL_BYTES, MAX_PAGES, iter_pages, page_items

__all__ = [
    "CardInUse",
    "DeviceFull",
    "Ef45Client",
    "Ef45Error",
    "Ef45Rejected",
    "Ef45ServerError",
    "Ef45Unavailable",
    "Ef45User",
    "FileMissing",
    "LockBusy",
    "LockLost",
    "UnknownUser",
    "UserExists",
]

from syncd.targets.ef45.ids import is_sub_id
from syncd.targets.ef45.records import Ef45User, version_key
from syncd.targets.ef45.records import seg as _seg
from syncd.targets.ef45.records import uuid_of as _uuid_of
from syncd.targets.limits import ListBudget

log = logging.getLogger(__name__)


class Ef45Client(DeviceCalls):
    """A locked session with one terminal; use it as an async context manager.

    `base_url` is the device root, e.g. "http://127.0.0.1:9980" (`/1.0` is appended).
    After entry, `app_version`, `record_version` and `uses_batch` describe the device.
    """

    def __init__(
        self,
        *,
        base_url: str,
        timeout_s: float = 10.0,
        steal_lock: bool = False,
        batch_min_version: str = "1.3.0",
        page_size: int = 50,
        transport: httpx.AsyncBaseTransport | None = None,
        lock_memo: LockMemo | None = None,
        lock_policy: LockPolicy | None = None,
        face_sub_id_param: str = "subId",
        image_dir: str = IMAGE_DIR,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_list_body_bytes: int = MAX_LIST_BODY_BYTES,
        max_pages: int = MAX_PAGES,
        max_list_total_bytes: int = MAX_LIST_TOTAL_BYTES,
        ca_file: Path | None = None,
    ) -> None:
        self._conn = Ef45Connection(
            base_url=base_url,
            timeout_s=timeout_s,
            steal_lock=steal_lock,
            transport=transport,
            lock_memo=lock_memo,
            lock_policy=lock_policy,
            max_body_bytes=max_body_bytes,
            max_list_body_bytes=max_list_body_bytes,
            ca_file=ca_file,
        )
        self.batch_min_version = batch_min_version
        self.page_size = page_size
        self.max_pages = max_pages
        self.max_list_total_bytes = max_list_total_bytes
        self.face_sub_id_param = face_sub_id_param
        self.image_dir = image_dir
        self.app_version = ""
        self.record_version = 0
        self.uses_batch = False
        self._closing: asyncio.Future[None] | None = None

    @property
    def connection(self) -> Ef45Connection:
        """The locked connection under this client (raw calls: `syncd probe`)."""
        return self._conn

    @property
    def base_url(self) -> str:
        """The terminal's root URL, as configured."""
        return self._conn.base_url

    async def __aenter__(self) -> Ef45Client:
        """Take the lock (stealing it if allowed), then read version and record version.

        Raise LockBusy if another client holds the lock, Ef45Unavailable if the device
        does not answer; the lock is released again if anything after taking it fails.
        """
        await self._conn.open()
        try:
            version = await self._conn.get_open_json("/version")
            self.app_version = str(version.get("version", ""))
            path = "/subjects/record-version"
            record = await self._conn.get_json(path)
            self.record_version = int_field(record, "record_version", self._conn.where("GET", path))
        except BaseException:
            await self._close_shielded()
            raise
        running = version_key(self.app_version)  # unparsable: separate calls work everywhere
        self.uses_batch = bool(running) and running >= version_key(self.batch_min_version)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release the lock and close; never raises over the original error."""
        await self._close_shielded()

    async def _close_shielded(self) -> None:
        """Release and close, shielded: a cancellation arriving meanwhile does not
        interrupt the release (bounded by the timeout) and is passed on once it is done.
        """
        self._closing = asyncio.ensure_future(self._conn.close())
        try:
            await asyncio.shield(self._closing)
        except asyncio.CancelledError:
            await asyncio.wait({self._closing})
            raise

    # -- users -----------------------------------------------------------------------

    async def get_user(self, uuid: str) -> Ef45User | None:
        """Return the user `uuid` (subject, user info, faces), or None if no subject."""
        subject = await self.get_subject(uuid)
        if subject is None:
            return None
        info = await self.get_user_info(uuid)
        return Ef45User(subject, info, tuple(await self._faces_of(uuid)))

    async def get_subject(self, uuid: str) -> dict[str, Any] | None:
        """Return the subject `uuid` as the terminal holds it, or None if absent (404)."""
        return await self._get_or_none(f"/subjects/{_seg(uuid)}")

    async def get_user_info(self, uuid: str) -> dict[str, Any] | None:
        """Return the user info of `uuid`, or None if it has none (404)."""
        return await self._get_or_none(f"/user-info/uuid/{_seg(uuid)}")

    async def create_user(
        self,
        subject: Mapping[str, Any],
        user_info: Mapping[str, Any],
        faces: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Create user `subject["user_uuid"]` with its user info and faces.

        `record_version` defaults to the device's. User info is written only when it has
        a field besides `user_uuid`. Raise UserExists if the user is present, CardInUse if
        another user holds the card, DeviceFull, Ef45Rejected (e.g. a bad body). With
        separate calls, the parts written before a failure are deleted again (best effort).
        """
        uuid = _uuid_of(subject)
        subject_body = {"record_version": self.record_version, **subject}
        info_body = {k: v for k, v in user_info.items() if k != "user_uuid"}
        face_bodies = [{**face, "user_uuid": uuid} for face in faces]
        if self.uses_batch:
            body = {**subject_body, **info_body, "faces": face_bodies}
            response = await self._conn.call("POST", "/user", body=body, allow=(404, 409))
            if response.is_success:
                return
            if response.status_code == 409:
                raise await self._conflict(uuid, response, "/user")
            self._no_batch("POST /user")
        await self._create_separately(uuid, subject_body, info_body, face_bodies)

    async def _conflict(self, uuid: str, response: httpx.Response, path: str) -> Ef45Error:
        """Return what a 409 on creating `uuid` means: the user exists, or the card is
        another user's."""
        if await self._get_or_none(f"/subjects/{_seg(uuid)}") is None:
            return self._card_in_use("POST", path)
        where = self._conn.where(response.request.method, path)
        return UserExists(f"{where}: HTTP 409: user {uuid} exists", status=409)

    def _card_in_use(self, method: str, path: str) -> CardInUse:
        where = self._conn.where(method, path)
        return CardInUse(f"{where}: HTTP 409: the card is held by another user", status=409)

    async def _create_separately(
        self,
        uuid: str,
        subject: dict[str, Any],
        info: dict[str, Any],
        faces: list[dict[str, Any]],
    ) -> None:
        response = await self._conn.call("POST", "/subjects", body=subject, allow=(409,))
        if response.status_code == 409:
            raise UserExists(f"{self._conn.where('POST', '/subjects')}: HTTP 409", status=409)
        written: list[tuple[str, Params | None]] = [(f"/subjects/{_seg(uuid)}", None)]
        try:
            if info:
                await self._post_user_info({"user_uuid": uuid, **info})
                written.append((f"/user-info/uuid/{_seg(uuid)}", None))
            for face in faces:
                await self._conn.call("POST", "/faces", body=face)
                written.append((f"/faces/{_seg(uuid)}", self._face_params(face["sub_id"])))
        except Ef45Error:
            await self._undo(written)
            raise

    async def _undo(self, written: list[tuple[str, Params | None]]) -> None:
        for path, params in reversed(written):
            try:
                await self._conn.call("DELETE", path, params=params, allow=(404,))
            except Ef45Error as exc:
                log.warning("%s: could not undo a partial create: %s", self.base_url, exc)

    async def update_user(
        self,
        subject: Mapping[str, Any] | None,
        user_info: Mapping[str, Any] | None,
        faces: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Update the parts given (None leaves a part alone) of one existing user.

        Each part given is written whole: the firmware very likely replaces the record,
        so a field left out is lost on the terminal (the caller carries what it does not
        manage). The uuid comes from the subject, else the user info, else the first face.
        Subject: PUT, `record_version` defaulting to the device's (UnknownUser if absent).
        User info: PUT, or POST when the device has none but holds the subject
        (UnknownUser if it holds neither). Faces: PUT per existing sub_id, POST new ones,
        DELETE those not given.
        """
        uuid = _uuid_of(subject, user_info, *(faces or ()))
        if subject is not None:
            path = f"/subjects/{_seg(uuid)}"
            body = {"record_version": self.record_version, **subject}
            response = await self._conn.call("PUT", path, body=body, allow=(404,))
            if self._conn.absent(response):
                raise self._unknown_user(response, path)
        if user_info is not None:
            await self._put_user_info(uuid, user_info)
        if faces is not None:
            await self._sync_faces(uuid, faces)

    async def _put_user_info(self, uuid: str, user_info: Mapping[str, Any]) -> None:
        path = f"/user-info/uuid/{_seg(uuid)}"
        response = await self._conn.call("PUT", path, body=dict(user_info), allow=(404, 409))
        if response.status_code == 409:  # the user's own info exists: it is the card
            raise self._card_in_use("PUT", path)
        if self._conn.absent(response):
            if await self.get_subject(uuid) is None:  # deleted at the terminal: no user
                raise self._unknown_user(response, path)
            await self._post_user_info({**user_info, "user_uuid": uuid})

    async def _post_user_info(self, body: Mapping[str, Any]) -> None:
        """POST a user info; a 409 is the card (the uuid's own info is absent)."""
        response = await self._conn.call("POST", "/user-info", body=dict(body), allow=(409,))
        if response.status_code == 409:
            raise self._card_in_use("POST", "/user-info")

    async def _sync_faces(self, uuid: str, faces: Sequence[Mapping[str, Any]]) -> None:
        present = {int(face["sub_id"]) for face in await self._faces_of(uuid)}
        wanted = {int(face["sub_id"]): face for face in faces}
        path = f"/faces/{_seg(uuid)}"
        for sub_id, face in wanted.items():
            body = {**face, "user_uuid": uuid}
            if sub_id in present:
                await self._conn.call("PUT", path, params=self._face_params(sub_id), body=body)
            else:
                await self._conn.call("POST", "/faces", body=body)
        for sub_id in sorted(present - wanted.keys()):
            await self._conn.call("DELETE", path, params=self._face_params(sub_id))

    def _face_params(self, sub_id: Any) -> Params:
        """Return the query naming face `sub_id` (`face_sub_id_param`)."""
        return {self.face_sub_id_param: int(sub_id)}

    async def delete_user(self, uuid: str) -> None:
        """Delete user `uuid` with its user info and faces; raise UnknownUser if absent.

        A 404 on `DELETE /user/{uuid}` says either "no such user" or "no such path": the
        separate calls then ask for the subject, and switch the session off the batch
        path only when the user turns out to exist.
        """
        batch = self.uses_batch
        if batch:
            response = await self._conn.call("DELETE", f"/user/{_seg(uuid)}", allow=(404,))
            if response.is_success:
                return
        if await self._get_or_none(f"/subjects/{_seg(uuid)}") is None:
            raise UnknownUser(f"{self._conn.where('DELETE', '/subjects/…')}: no user {uuid}")
        if batch:
            self._no_batch("DELETE /user")
        for face in await self._faces_of(uuid):
            params = self._face_params(face["sub_id"])
            await self._conn.call("DELETE", f"/faces/{_seg(uuid)}", params=params, allow=(404,))
        await self._conn.call("DELETE", f"/user-info/uuid/{_seg(uuid)}", allow=(404,))
        await self._conn.call("DELETE", f"/subjects/{_seg(uuid)}", allow=(404,))

    def _no_batch(self, what: str) -> None:
        """Switch this session to separate calls after a 404 on a batch path."""
        log.info("%s: %s answered 404; using separate calls", self.base_url, what)
        self.uses_batch = False

    def _unknown_user(self, response: httpx.Response, path: str) -> UnknownUser:
        where = self._conn.where(response.request.method, path)
        return UnknownUser(f"{where}: HTTP 404: {self._conn.remote_text(response, ())}", status=404)

    async def _get_or_none(self, path: str) -> dict[str, Any] | None:
        response = await self._conn.call("GET", path, allow=(404,))
        if self._conn.absent(response):
            return None
        return json_dict(response, self._conn.where("GET", path))

    async def _faces_of(self, uuid: str) -> list[dict[str, Any]]:
        # 404: the user has no faces (the device's answer, also on old firmware).
        path = f"/faces/{_seg(uuid)}"
        response = await self._conn.call("GET", path, allow=(404,), listing=True)
        if self._conn.absent(response):
            return []
        where = self._conn.where("GET", path)
        faces = page_items(json_dict(response, where), where)
        kept = [face for face in faces if is_sub_id(face.get("sub_id"))]
        if len(kept) < len(faces):
            log.warning(
                "%s: %d face(s) without an integer sub_id skipped", where, len(faces) - len(kept)
            )
        return kept

    # -- lists -----------------------------------------------------------------------

    def iter_subjects(self) -> AsyncIterator[dict[str, Any]]:
        """Yield every subject, page by page."""
        return self._iter("/subjects")

    def iter_user_info(self) -> AsyncIterator[dict[str, Any]]:
        """Yield every user info, page by page."""
        return self._iter("/user-info")

    def iter_faces(self) -> AsyncIterator[dict[str, Any]]:
        """Yield every face, page by page."""
        return self._iter("/faces")

    def iter_logs(self) -> AsyncIterator[dict[str, Any]]:
        """Yield every log entry, oldest first, page by page."""
        return self._iter("/logs")

    def iter_logs_between(self, min_id: int, max_id: int) -> AsyncIterator[dict[str, Any]]:
        """Yield the log entries with min_id <= id <= max_id (none: nothing)."""
        return self._iter("/logs/from/to", {"min": min_id, "max": max_id})

    async def delete_logs_between(self, min_id: int, max_id: int) -> None:
        """Delete the log entries with min_id <= id <= max_id (an empty range is no error)."""
        # A 404 is an empty range (the device cannot tell it from an unknown path).
        params = {"min": min_id, "max": max_id}
        await self._conn.call("DELETE", "/logs", params=params, allow=(404,))

    def _iter(self, path: str, params: Params | None = None) -> AsyncIterator[dict[str, Any]]:
        where = self._conn.where("GET", path)
        budget = ListBudget(self.max_list_total_bytes, where, Ef45Unavailable)

        async def fetch(page: int) -> dict[str, Any] | None:
            query = {**(params or {}), "page": page, "page_size": self.page_size}
            response = await self._conn.call("GET", path, params=query, allow=(404,), listing=True)
            budget.spend(len(response.content))
            # "Log entries within range … do not exist": an empty range, not an error.
            if self._conn.absent(response):
                return None
            return json_dict(response, self._conn.where("GET", path))

        return iter_pages(fetch, self._conn.where("GET", path), max_pages=self.max_pages)
