"""The request handlers of the EF-45 emulator: one async function per endpoint.

Each takes the request and the terminal's `Ef45State` and returns a response; a refused
request raises `DeviceError`, which `ef45._endpoint` turns into the JSON error. The lock
check happens before a handler runs, also in `ef45`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from syncd.emulators.ef45_enroll import enroll_fake
from syncd.emulators.ef45_rules import DeviceError, Record, paginate
from syncd.emulators.ef45_state import Ef45State

PAGE_SIZE = 50
LOG_PAGE_SIZE = 100
Handler = Callable[[Request, Ef45State], Awaitable[Response]]


def _json(payload: Any, status: int = 200) -> Response:
    return JSONResponse(payload, status_code=status)


def _empty(status: int) -> Response:
    return Response(status_code=status)


BARE = frozenset({400, 404, 409})
"""Statuses the device answers without a body (`ef45-notes.md`)."""


def error_response(status: int, message: str, *, texts: bool = False) -> Response:
    """Return the device's error: a bare status for 400, 404 and 409 (unless `texts`:
    the "lenient" profile's bodies), else the JSON `{status_code, reason_phrase, message}`."""
    if status in BARE and not texts:
        return _empty(status)
    phrase = HTTPStatus(status).phrase
    return _json({"status_code": status, "reason_phrase": phrase, "message": message}, status)


def decoded(segment: str) -> str:
    """Return one path segment as sent (percent-encoded, see `ef45.RawPathRouting`)
    decoded to its text (UTF-8)."""
    return unquote(segment, encoding="utf-8", errors="replace")


async def _body(request: Request) -> dict[str, Any]:
    """Return the JSON object body; raise DeviceError(400) for anything else."""
    try:
        body = await request.json()
    except ValueError:
        raise DeviceError(400, "body must be JSON") from None
    if not isinstance(body, dict):
        raise DeviceError(400, "body must be a JSON object")
    return body


def _int_query(request: Request, name: str, *, required: bool = False) -> int | None:
    text = request.query_params.get(name)
    if text is None:
        if required:
            raise DeviceError(400, f"query parameter {name} is required")
        return None
    try:
        return int(text)
    except ValueError:
        raise DeviceError(400, f"query parameter {name} must be an integer") from None


def _required_int(request: Request, name: str) -> int:
    value = _int_query(request, name, required=True)
    assert value is not None  # _int_query raised otherwise
    return value


def _paged(request: Request, items: list[Record], default_size: int = PAGE_SIZE) -> Response:
    size = _int_query(request, "page_size")
    page = paginate(items, _int_query(request, "page"), size or default_size)
    return _json(
        {
            "status_code": 200,
            "reason_phrase": "OK",
            "items": page.items,
            "page": page.page,
            "page_size": page.page_size,
            "total": page.total,
            "has_more": page.has_more,
        }
    )


def _path(request: Request, name: str) -> str:
    return decoded(str(request.path_params[name]))


# -- lock and version (no lock needed) ---------------------------------------------------


async def take_lock(request: Request, state: Ef45State) -> Response:
    return _json({"lock_uid": state.acquire_lock()})


async def steal_lock(request: Request, state: Ef45State) -> Response:
    return _json({"lock_uid": state.steal_lock()})


async def release_lock(request: Request, state: Ef45State) -> Response:
    state.release_lock(_path(request, "uid"))
    return _empty(200)


async def version(request: Request, state: Ef45State) -> Response:
    return _json({"version": state.app_version})


# -- subjects ----------------------------------------------------------------------------


async def list_subjects(request: Request, state: Ef45State) -> Response:
    with state.mutex:
        items = [dict(s) for s in state.subjects.values()]
    return _paged(request, items)


async def add_subject(request: Request, state: Ef45State) -> Response:
    state.add_subject(await _body(request))
    return _empty(201)


async def record_version(request: Request, state: Ef45State) -> Response:
    return _json({"record_version": state.record_version})


async def is_exist_template(request: Request, state: Ef45State) -> Response:
    body = await _body(request)
    left, right = body.get("left_eye_template") or "", body.get("right_eye_template") or ""
    return _json({"duplicate_uuid": state.find_template(str(left), str(right))})


async def get_subject(request: Request, state: Ef45State) -> Response:
    return _json(state.get_subject(_path(request, "uuid")))


async def put_subject(request: Request, state: Ef45State) -> Response:
    state.update_subject(_path(request, "uuid"), await _body(request))
    return _empty(204)


async def delete_subject(request: Request, state: Ef45State) -> Response:
    state.delete_subject(_path(request, "uuid"))
    return _empty(204)


# -- user info ---------------------------------------------------------------------------


async def list_user_info(request: Request, state: Ef45State) -> Response:
    with state.mutex:
        items = [dict(i) for i in state.user_info.values()]
    return _paged(request, items)


async def add_user_info(request: Request, state: Ef45State) -> Response:
    state.add_user_info(await _body(request))
    return _empty(201)


async def get_user_info(request: Request, state: Ef45State) -> Response:
    return _json(state.get_user_info(_path(request, "uuid")))


async def put_user_info(request: Request, state: Ef45State) -> Response:
    state.update_user_info(_path(request, "uuid"), await _body(request))
    return _empty(204)


async def delete_user_info(request: Request, state: Ef45State) -> Response:
    state.delete_user_info(_path(request, "uuid"))
    return _empty(204)


async def user_info_by_card(request: Request, state: Ef45State) -> Response:
    return _json(state.user_info_by_card(_path(request, "card")))


# -- faces -------------------------------------------------------------------------------


async def list_faces(request: Request, state: Ef45State) -> Response:
    return _paged(request, state.all_faces())


async def add_face(request: Request, state: Ef45State) -> Response:
    state.add_face(await _body(request))
    return _empty(201)


def _sub_id(request: Request, state: Ef45State, *, required: bool) -> int | None:
    """Return the face sub id from the first query name the device reads
    (`behaviour.face_params`); a name it does not read is ignored, as on the device."""
    for name in sorted(state.behaviour.face_params):
        if name in request.query_params:
            return _int_query(request, name)
    if required:
        raise DeviceError(400, "the face's sub id is required")
    return None


async def get_faces(request: Request, state: Ef45State) -> Response:
    faces = state.faces_of(_path(request, "uuid"), _sub_id(request, state, required=False))
    return _paged(request, faces)


async def put_face(request: Request, state: Ef45State) -> Response:
    sub_id = _sub_id(request, state, required=True)
    assert sub_id is not None  # required
    state.update_face(_path(request, "uuid"), sub_id, await _body(request))
    return _empty(204)


async def delete_face(request: Request, state: Ef45State) -> Response:
    sub_id = _sub_id(request, state, required=True)
    assert sub_id is not None  # required
    state.delete_face(_path(request, "uuid"), sub_id)
    return _empty(204)


# -- batch user (new firmware) -------------------------------------------------------------


async def add_user(request: Request, state: Ef45State) -> Response:
    state.add_user(await _body(request))
    return _empty(200)


async def delete_user(request: Request, state: Ef45State) -> Response:
    state.delete_user(_path(request, "uuid"))
    return _empty(204)


# -- logs --------------------------------------------------------------------------------


async def list_logs(request: Request, state: Ef45State) -> Response:
    with state.mutex:
        items = [dict(e) for e in state.logs.values()]
    return _paged(request, items, LOG_PAGE_SIZE)


async def logs_between(request: Request, state: Ef45State) -> Response:
    found = state.logs_between(_required_int(request, "min"), _required_int(request, "max"))
    return _paged(request, found, LOG_PAGE_SIZE)


async def delete_logs_between(request: Request, state: Ef45State) -> Response:
    found = state.logs_between(_required_int(request, "min"), _required_int(request, "max"))
    state.delete_logs(entry["id"] for entry in found)
    return _empty(204)


async def get_log(request: Request, state: Ef45State) -> Response:
    log_id = int(request.path_params["id"])
    return _json(state.logs_between(log_id, log_id)[0])


async def delete_log(request: Request, state: Ef45State) -> Response:
    log_id = int(request.path_params["id"])
    state.logs_between(log_id, log_id)
    state.delete_logs([log_id])
    return _empty(204)


async def delete_all_logs(request: Request, state: Ef45State) -> Response:
    with state.mutex:
        state.delete_logs(list(state.logs))
    return _empty(204)


# -- device ------------------------------------------------------------------------------


async def door_status(request: Request, state: Ef45State) -> Response:
    return _json(dict(state.door))


async def get_config(request: Request, state: Ef45State) -> Response:
    title, type_ = _path(request, "title"), _path(request, "type")
    return _json({"title": title, type_: state.get_config(title)})


async def put_config(request: Request, state: Ef45State) -> Response:
    # The body's shape is unverified: accept {"<type>": value} as the GET answers it, or
    # a bare JSON value.
    title, type_ = _path(request, "title"), _path(request, "type")
    try:
        body = await request.json()
    except ValueError:
        raise DeviceError(400, "body must be JSON") from None
    value = body[type_] if isinstance(body, dict) and type_ in body else body
    with state.mutex:
        state.config[title] = value
    return _empty(204)


async def set_device_time(request: Request, state: Ef45State) -> Response:
    state.set_device_time(_path(request, "device_time"))
    return _json({"success": True, "status": "OK"})


async def load_file(request: Request, state: Ef45State) -> Response:
    data = state.load_file(request.query_params.get("filename", ""))
    if data is None:  # the device's answer for a missing file (full-path profile)
        return _json({"file": "", "size": 0})
    return _json({"file": base64.b64encode(data).decode("ascii"), "size": len(data)})


async def save_file(request: Request, state: Ef45State) -> Response:
    filename = request.query_params.get("filename", "")
    if not filename:
        raise DeviceError(400, "query parameter filename is required")
    try:
        data = base64.b64decode(await request.json(), validate=True)
    except (ValueError, TypeError, binascii.Error):
        raise DeviceError(400, "body must be a base64 JSON string") from None
    name = state.file_name(filename)
    if name is None:
        raise DeviceError(400, "filename must be a full path")
    with state.mutex:
        state.files[name] = data
    return _empty(200)


# -- emulator administration (not the device's API) -------------------------------------


async def fake_enroll(request: Request, state: Ef45State) -> Response:
    """`POST /_emulator/enroll/{uuid}?face=1`: fake an enrollment of an existing subject
    (404 if absent); answer the modalities enrolled, never the templates."""
    face = request.query_params.get("face", "").lower() in {"1", "true", "yes"}
    uuid = _path(request, "uuid")
    return _json({"user_uuid": uuid, "enrolled": list(enroll_fake(state, uuid, face=face))})
