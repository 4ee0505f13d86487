"""The Suprema CLUe cloud emulator: auths and events of one place, over HTTP (Starlette).

Endpoints (bodies and answers shaped like the CLUe quick start, `clue-api.txt`), with
BASE the state's `api_base`: "/v1" (default; the newer guide serves auths at
`/v1/places/{placeId}/auths` "with add, update and delete") or "/v1/be" (the quick start):

    POST   BASE/places/{placeId}/auths             create an auth (documented)
    GET    BASE/places/{placeId}/auths?page&size   list auths, page 0-based (*unverified*)
    GET    BASE/places/{placeId}/auths/{authId}    one auth (*unverified*)
    PUT    BASE/places/{placeId}/auths/{authId}    replace an auth (*unverified*)
    DELETE BASE/places/{placeId}/auths/{authId}    delete an auth (*unverified*)
    GET    /v1/be/events?startTime&endTime&filterEvents&page&size&sort=id,asc&placeId
    GET    /v1/audit-logs?…                        the same query (only with BASE "/v1")

The quick start documents create and the events query; the other paths and their
answers are our best guess, kept configurable in the client. The newer guide points
logs at `/v1/audit-logs` without showing its query or answer: it is served here with
the events query's, an *unverified* guess. A list answers like the events query:
`{code, status, message, total, data: [auth, ...]}`. A duplicate `user.key` is refused
or accepted as `ClueState.duplicate_keys` says.

Every request must carry the API key in `Authorization`, bare or as `Bearer <key>`
(else 401). Requests past that check count against a token bucket per key and may be
answered 429 with `Retry-After` in seconds; `ClueState.force_rate_limit` forces the next
K requests to 429. Errors answer `{code, status: false, message}` with the HTTP status
as `code`. `FaultMiddleware` wraps the whole app (latency, 503s, timeouts, drops, all
before the app acts); `ClueState.lose_answers` loses answers after it has acted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncd.emulators.clue_state import ClueApiError, ClueState
from syncd.emulators.faults import DroppedConnection, FaultMiddleware, Faults
from syncd.emulators.server import LOOPBACK, serve_forever

Payload = dict[str, Any]
Handler = Callable[[Request, ClueState], Awaitable[Payload]]


def create_clue_app(state: ClueState, faults: Faults | None = None) -> ASGIApp:
    """Return the ASGI app serving `state`, wrapped in `FaultMiddleware(faults)`."""
    auths = state.api_base + "/places/{placeId:int}/auths"
    item = auths + "/{authId:int}"
    routes = [
        Route(auths, _endpoint(state, _create), methods=["POST"]),
        Route(auths, _endpoint(state, _list), methods=["GET"]),
        Route(item, _endpoint(state, _get), methods=["GET"]),
        Route(item, _endpoint(state, _update), methods=["PUT"]),
        Route(item, _endpoint(state, _delete), methods=["DELETE"]),
        Route("/v1/be/events", _endpoint(state, _events), methods=["GET"]),
    ]
    if state.api_base == "/v1":
        routes.append(Route("/v1/audit-logs", _endpoint(state, _events), methods=["GET"]))
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    return FaultMiddleware(_AnswerLoss(app, state), faults or Faults())


class _AnswerLoss:
    """ASGI middleware: a request `ClueState.lose_answers` picked is carried out in full,
    then its answer is lost (the connection dropped midway, or a bare 503)."""

    def __init__(self, app: ASGIApp, state: ClueState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        how = None
        if scope["type"] == "http":
            how = self.state.take_lost_answer(str(scope.get("method", "")))
        if how is None:
            await self.app(scope, receive, send)
            return

        async def swallow(message: Message) -> None:
            return None

        await self.app(scope, receive, swallow)
        if how == "503":
            await _send_bare(send, 503)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"512")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"code": 200, ', "more_body": True})
        raise DroppedConnection("answer lost after the request was carried out")


async def _send_bare(send: Send, status: int) -> None:
    headers = [(b"content-length", b"0")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def run_clue_emulator(
    *,
    port: int,
    place_id: int,
    api_key: str,
    rate_limit: int | None = 300,
    window_s: float = 300.0,
    latency_ms: float = 0.0,
    error_rate: float = 0.0,
    timeout_rate: float = 0.0,
    drop_rate: float = 0.0,
    seed: int = 0,
    api_base: str = "/v1",
    duplicate_keys: str = "refuse",
    host: str = LOOPBACK,
) -> None:
    """Serve one CLUe place on `host:port` until interrupted (blocking).

    The default limit, 300 requests per 300 s per key, is the one a related Suprema API
    documents; CLUe's own limit is *unverified*. `rate_limit=None` turns it off.
    """
    state = ClueState(
        place_id=place_id,
        api_key=api_key,
        rate_limit=rate_limit,
        window_s=window_s,
        seed=seed,
        api_base=api_base,
        duplicate_keys=duplicate_keys,
    )
    faults = Faults(
        latency_ms=latency_ms,
        error_rate=error_rate,
        timeout_rate=timeout_rate,
        drop_rate=drop_rate,
        seed=seed,
    )
    serve_forever([(create_clue_app(state, faults), port)], host=host)


def _endpoint(state: ClueState, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap `handler` with the API key check, the rate limiter and error rendering."""

    async def endpoint(request: Request) -> Response:
        if not state.authorize(request.headers.get("authorization")):
            return _error(401, "Unauthorized: API key missing or not valid")
        retry_after = state.admit()
        if retry_after is not None:
            headers = {"Retry-After": str(int(retry_after))}
            return _error(429, "Too many requests: rate limit exceeded", headers)
        state.record_request(request.method, request.url.path)
        try:
            payload = await handler(request, state)
        except ClueApiError as exc:
            return _error(exc.status, exc.message)
        return JSONResponse({"code": 200, "status": True, "message": "OK", **payload})

    return endpoint


async def _create(request: Request, state: ClueState) -> Payload:
    state.check_place(request.path_params["placeId"])
    return {"data": state.create_auth(await _json(request))}


async def _update(request: Request, state: ClueState) -> Payload:
    state.check_place(request.path_params["placeId"])
    body = await _json(request)
    return {"data": state.update_auth(request.path_params["authId"], body)}


async def _delete(request: Request, state: ClueState) -> Payload:
    state.check_place(request.path_params["placeId"])
    state.delete_auth(request.path_params["authId"])
    return {"data": None}


async def _get(request: Request, state: ClueState) -> Payload:
    state.check_place(request.path_params["placeId"])
    return {"data": state.get_auth(request.path_params["authId"])}


async def _list(request: Request, state: ClueState) -> Payload:
    state.check_place(request.path_params["placeId"])
    page = _int_param(request, "page") or 0
    size = _int_param(request, "size") or 20
    data, total = state.list_auths(page, size)
    return {"total": total, "data": data}


async def _events(request: Request, state: ClueState) -> Payload:
    place_id = _int_param(request, "placeId")
    if place_id is not None:
        state.check_place(place_id)
    data, total = state.query_events(
        start_ms=_int_param(request, "startTime"),
        end_ms=_int_param(request, "endTime"),
        event_types=_event_filter(request.query_params.get("filterEvents")),
        page=_int_param(request, "page") or 0,
        size=_int_param(request, "size"),
        descending=_descending(request.query_params.get("sort")),
    )
    return {"total": total, "data": data}


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise ClueApiError(400, "body: not valid JSON") from None


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ClueApiError(400, f"{name}: must be an integer") from None


def _event_filter(raw: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (raw or "").split(",") if part.strip())


def _descending(raw: str | None) -> bool:
    normalized = (raw or "id,asc").replace(" ", "").lower()
    if normalized not in {"id,asc", "id,desc", "id"}:
        raise ClueApiError(400, "sort: must be id,asc or id,desc")
    return normalized == "id,desc"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"code": status, "status": False, "message": message}
    return JSONResponse(body, status_code=status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    # Unknown paths and methods answer in the API's own error shape, not Starlette's text.
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return _error(status, f"{request.method} {request.url.path}: {exc}")
