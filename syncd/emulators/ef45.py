"""The EF-45 terminal emulator over HTTP (Starlette), faithful to `ef45-rest-api.txt`.

All paths are under `/1.0`, bodies and answers are JSON:

    POST /lock, PUT /lock (steal), DELETE /lock/{uid}, GET /version      no lock needed
    GET|POST /subjects            GET /subjects/record-version
    GET|PUT|DELETE /subjects/{uuid}        PUT /subjects/is-exist/template
    GET|POST /user-info           GET|PUT|DELETE /user-info/uuid/{uuid}
    GET /user-info/card/{card}
    GET|POST /faces               GET|PUT|DELETE /faces/{uuid}?subId (or sub_id: profile)
    POST /user, DELETE /user/{uuid}                  new firmware only; old answers 404
    GET /logs, DELETE /logs?min&max, GET /logs/from/to?min&max, GET|DELETE /logs/{id},
    DELETE /logs/db
    GET /config/door-status, GET|PUT /config/{title}/{type}
    POST /camera/control/setDeviceTime/{MMddhhmmyyyy.ss}
    GET /biometric-data/load-file?filename, PUT /biometric-data/save-file?filename

and one admin route, not the device's (no `/1.0`, no lock), for trying enrollments:

    POST /_emulator/enroll/{uuid}?face=1   fake an enrollment at the terminal (`ef45_enroll`)

Every other path needs `?lock_uid=` equal to the holder, else 403 (the behaviour's
`lost_lock_status`) with a JSON message. Where the firmware's answer is a choice, the
terminal's `Ef45Behaviour` decides (`ef45_behaviour`; profiles "device", the default,
and "lenient"; `syncd emulate ef45 --profile`).
Lists take `page` (1-based) and `page_size` (50, 100 for logs) and answer `{status_code,
reason_phrase, items, page, page_size, total, has_more}`; without `page`, everything.
As the device does (`ef45-notes.md`), 400, 404 and 409 are bare statuses without a body
(the "lenient" profile adds a JSON body with the text);
other errors answer `{status_code, reason_phrase, message}` (their statuses on the real
device are unverified: see `ef45_state`). `FaultMiddleware` wraps the whole app.

Paths are routed on the path as sent, segment by segment, each segment then
percent-decoded (`RawPathRouting`): a uuid holding `/`, `?`, `%`, spaces or é must
arrive as one encoded segment, as on the device, where an unencoded `/` names another
path. `Ef45State.refused_writes` makes every POST/PUT about one user fail.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from syncd.emulators import ef45_handlers as h
from syncd.emulators.ef45_behaviour import profile as behaviour_profile
from syncd.emulators.ef45_enroll import enroll_when_created
from syncd.emulators.ef45_handlers import Handler
from syncd.emulators.ef45_rules import DeviceError
from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.faults import FaultMiddleware, Faults
from syncd.emulators.server import LOOPBACK, serve_forever

PREFIX = "/1.0"


def _endpoint(
    state: Ef45State, handler: Handler, *, locked: bool, batch: bool
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        if batch and not state.has_batch:
            # Old firmware has no such path: answer as for any unknown route.
            return PlainTextResponse("Not Found", status_code=404)
        try:
            if locked:
                state.check_lock(request.query_params.get("lock_uid"))
            if state.refused_writes and request.method in ("POST", "PUT"):
                await _refuse_write(request, state)
            return await handler(request, state)
        except DeviceError as exc:
            return h.error_response(exc.status, exc.message, texts=state.behaviour.error_texts)
        except ClientDisconnect:
            # The client went away mid-body (a crash test kills syncd): nothing was
            # changed and nobody reads the answer; a traceback would be noise.
            return PlainTextResponse("client disconnected", status_code=499)

    return endpoint


async def _refuse_write(request: Request, state: Ef45State) -> None:
    """Raise the status `state.refused_writes` gives the user this write is about."""
    uuid = request.path_params.get("uuid")
    if uuid is None:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            return
        uuid = body.get("user_uuid") if isinstance(body, dict) else None
    else:
        uuid = h.decoded(str(uuid))
    status = state.refused_writes.get(uuid) if isinstance(uuid, str) else None
    if status is not None:
        raise DeviceError(status, "refused (fault injection)")


ADMIN_PREFIX = "/_emulator"
_OPEN = {h.take_lock, h.steal_lock, h.release_lock, h.version, h.fake_enroll}
_BATCH = {h.add_user, h.delete_user}
_ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/lock", h.take_lock),
    ("PUT", "/lock", h.steal_lock),
    ("DELETE", "/lock/{uid}", h.release_lock),
    ("GET", "/version", h.version),
    ("GET", "/subjects", h.list_subjects),
    ("POST", "/subjects", h.add_subject),
    ("GET", "/subjects/record-version", h.record_version),
    ("PUT", "/subjects/is-exist/template", h.is_exist_template),
    ("GET", "/subjects/{uuid}", h.get_subject),
    ("PUT", "/subjects/{uuid}", h.put_subject),
    ("DELETE", "/subjects/{uuid}", h.delete_subject),
    ("GET", "/user-info", h.list_user_info),
    ("POST", "/user-info", h.add_user_info),
    ("GET", "/user-info/uuid/{uuid}", h.get_user_info),
    ("PUT", "/user-info/uuid/{uuid}", h.put_user_info),
    ("DELETE", "/user-info/uuid/{uuid}", h.delete_user_info),
    ("GET", "/user-info/card/{card}", h.user_info_by_card),
    ("GET", "/faces", h.list_faces),
    ("POST", "/faces", h.add_face),
    ("GET", "/faces/{uuid}", h.get_faces),
    ("PUT", "/faces/{uuid}", h.put_face),
    ("DELETE", "/faces/{uuid}", h.delete_face),
    ("POST", "/user", h.add_user),
    ("DELETE", "/user/{uuid}", h.delete_user),
    ("GET", "/logs", h.list_logs),
    ("DELETE", "/logs", h.delete_logs_between),
    ("GET", "/logs/from/to", h.logs_between),
    ("DELETE", "/logs/db", h.delete_all_logs),
    ("GET", "/logs/{id:int}", h.get_log),
    ("DELETE", "/logs/{id:int}", h.delete_log),
    ("GET", "/config/door-status", h.door_status),
    ("GET", "/config/{title}/{type}", h.get_config),
    ("PUT", "/config/{title}/{type}", h.put_config),
    ("POST", "/camera/control/setDeviceTime/{device_time}", h.set_device_time),
    ("GET", "/biometric-data/load-file", h.load_file),
    ("PUT", "/biometric-data/save-file", h.save_file),
]
_ADMIN_ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/enroll/{uuid}", h.fake_enroll),
]


def _routes(state: Ef45State) -> list[BaseRoute]:
    routes = [(PREFIX, *route) for route in _ROUTES]
    routes += [(ADMIN_PREFIX, *route) for route in _ADMIN_ROUTES]
    return [
        Route(
            prefix + path,
            _endpoint(state, handler, locked=handler not in _OPEN, batch=handler in _BATCH),
            methods=[method],
        )
        for prefix, method, path, handler in routes
    ]


class RawPathRouting:
    """ASGI middleware routing on the path as sent (`raw_path`), not as decoded.

    The server decodes `%2F` into `/` before routing, which would split one encoded
    segment into two. Here the app sees the raw path; the handlers percent-decode each
    path parameter (`ef45_handlers.decoded`).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path")
        if scope["type"] == "http" and raw:
            scope = {**scope, "path": raw.decode("ascii", "replace")}
        await self.app(scope, receive, send)


def create_ef45_app(state: Ef45State, faults: Faults | None = None) -> ASGIApp:
    """Return the ASGI app of one terminal holding `state`, wrapped in `faults`."""
    app = RawPathRouting(Starlette(routes=_routes(state)))
    return FaultMiddleware(app, faults or Faults())


def build_ef45_emulators(
    *,
    count: int,
    base_port: int,
    firmware: str = "new",
    capacity: int = 10_000,
    record_version: int = 8976,
    latency_ms: float = 0.0,
    error_rate: float = 0.0,
    timeout_rate: float = 0.0,
    timeout_s: float = 30.0,
    drop_rate: float = 0.0,
    lock_held_by_other: bool = False,
    drop_lock_after: int | None = None,
    seed: int = 0,
    profile: str = "device",
    enroll: tuple[str, ...] = (),
) -> list[tuple[Ef45State, ASGIApp, int]]:
    """Return `count` independent terminals as (state, app, port), ports from `base_port`.

    Each terminal has its own state and its own fault sequence (seed + its index), and
    answers as the named `Ef45Behaviour` profile ("device" or "lenient"); raise
    ValueError for an unknown profile. The first terminal fakes an enrollment of each key
    in `enroll` once syncd creates its subject (`ef45_enroll.enroll_when_created`).
    """
    behaviour = behaviour_profile(profile)
    terminals = []
    for index in range(count):
        state = Ef45State(
            firmware=firmware,
            capacity=capacity,
            record_version=record_version,
            lock_held_by_other=lock_held_by_other,
            drop_lock_after=drop_lock_after,
            behaviour=behaviour,
            after_create=enroll_when_created(enroll) if enroll and index == 0 else None,
        )
        faults = Faults(
            latency_ms=latency_ms,
            error_rate=error_rate,
            timeout_rate=timeout_rate,
            timeout_s=timeout_s,
            drop_rate=drop_rate,
            seed=seed + index,
        )
        terminals.append((state, create_ef45_app(state, faults), base_port + index))
    return terminals


def run_ef45_emulators(*, host: str = LOOPBACK, **settings: Any) -> None:
    """Serve the terminals `build_ef45_emulators(**settings)` returns until interrupted."""
    terminals = build_ef45_emulators(**settings)
    serve_forever([(app, port) for _, app, port in terminals], host=host)
