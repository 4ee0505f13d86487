"""The keep-alive transport under the EF-45 client, against a real uvicorn server on loopback.

The server tells each answer's client port, so the tests see which TCP connection
carried a request: one connection is kept while the server keeps it, and a connection
whose answer did not arrive in full is never used again (a late answer must not be
taken for the next request's).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from syncd.emulators.faults import DroppedConnection
from syncd.emulators.server import EmulatorServer, free_port
from syncd.targets.ef45.keepalive import KeepAliveTransport

TIMEOUTS = {"timeout": {"connect": 2.0, "read": 2.0, "write": 2.0, "pool": 2.0}}


async def _port(request: Request) -> Response:
    assert request.client is not None
    return JSONResponse({"port": request.client.port, "path": request.url.path})


async def _echo(request: Request) -> Response:
    assert request.client is not None
    return JSONResponse({"port": request.client.port, "body": await request.json()})


async def _close(request: Request) -> Response:
    assert request.client is not None
    return JSONResponse({"port": request.client.port}, headers={"connection": "close"})


async def _slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params["s"]))
    return JSONResponse({"late": True})


async def _chunked(_request: Request) -> Response:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b'{"items": [', b"1, 2, ", b"3]}"):
            yield part

    return StreamingResponse(parts(), media_type="application/json")


async def _drop(_request: Request) -> Response:
    async def parts() -> AsyncIterator[bytes]:
        yield b'{"items": ['
        raise DroppedConnection("the test drops the connection mid-body")

    return StreamingResponse(parts(), media_type="application/json")


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    app = Starlette(
        routes=[
            Route("/port", _port),
            Route("/echo", _echo, methods=["POST"]),
            Route("/close", _close),
            Route("/slow", _slow),
            Route("/chunked", _chunked),
            Route("/drop", _drop),
        ]
    )
    with EmulatorServer(app) as running:
        yield running


@pytest.fixture
async def transport() -> AsyncIterator[KeepAliveTransport]:
    """A transport closed after the test, whatever the test did."""
    opened = KeepAliveTransport()
    try:
        yield opened
    finally:
        await opened.aclose()


async def _get(transport: KeepAliveTransport, url: str) -> httpx.Response:
    return await transport.handle_async_request(httpx.Request("GET", url, extensions=TIMEOUTS))


async def test_requests_share_one_connection_while_the_server_keeps_it(
    server: EmulatorServer, transport: KeepAliveTransport
) -> None:
    answers = [await _get(transport, f"{server.url}/port?n={n}") for n in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len({a.json()["port"] for a in answers}) == 1
    assert answers[0].request.url.path == "/port"


async def test_a_json_body_arrives_whole(
    server: EmulatorServer, transport: KeepAliveTransport
) -> None:
    body = {"user_uuid": "u-1", "first_name": "Zoë", "faces": [{"n": i} for i in range(300)]}
    request = httpx.Request("POST", f"{server.url}/echo", json=body, extensions=TIMEOUTS)
    answer = await transport.handle_async_request(request)
    assert answer.status_code == 200 and answer.json()["body"] == body


async def test_connection_close_opens_a_new_connection_next_time(
    server: EmulatorServer, transport: KeepAliveTransport
) -> None:
    first = await _get(transport, f"{server.url}/close")
    second = await _get(transport, f"{server.url}/port")
    assert first.json()["port"] != second.json()["port"]


async def test_a_chunked_answer_is_assembled(
    server: EmulatorServer, transport: KeepAliveTransport
) -> None:
    answer = await _get(transport, f"{server.url}/chunked")
    assert answer.json() == {"items": [1, 2, 3]}


async def test_a_read_timeout_drops_the_connection_and_its_late_answer(
    server: EmulatorServer, transport: KeepAliveTransport
) -> None:
    quick = {"timeout": {"connect": 2.0, "read": 0.1, "write": 2.0, "pool": 2.0}}
    before = await _get(transport, f"{server.url}/port")
    with pytest.raises(httpx.ReadTimeout):
        slow = httpx.Request("GET", f"{server.url}/slow?s=0.3", extensions=quick)
        await transport.handle_async_request(slow)
    after = await _get(transport, f"{server.url}/port")  # before the late answer
    assert after.json() == {"port": after.json()["port"], "path": "/port"}
    assert after.json()["port"] != before.json()["port"]


async def test_a_cancelled_request_leaves_no_answer_behind(
    server: EmulatorServer, transport: KeepAliveTransport
) -> None:
    pending = asyncio.create_task(_get(transport, f"{server.url}/slow?s=0.3"))
    await asyncio.sleep(0.05)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    after = await _get(transport, f"{server.url}/port")  # before the late answer
    assert after.json()["path"] == "/port"


async def test_a_connection_dropped_mid_answer_is_a_protocol_error(
    server: EmulatorServer, transport: KeepAliveTransport
) -> None:
    with pytest.raises(httpx.RemoteProtocolError, match="closed the connection"):
        await _get(transport, f"{server.url}/drop")
    after = await _get(transport, f"{server.url}/port")  # a new connection works
    assert after.status_code == 200


async def test_nobody_listening_is_a_connect_error(transport: KeepAliveTransport) -> None:
    with pytest.raises(httpx.ConnectError):
        await _get(transport, f"http://127.0.0.1:{free_port()}/port")


async def test_only_plain_http_is_served(transport: KeepAliveTransport) -> None:
    with pytest.raises(httpx.UnsupportedProtocol):
        await _get(transport, "https://127.0.0.1:9/port")


async def test_an_answer_without_length_ends_when_the_terminal_closes(
    transport: KeepAliveTransport,
) -> None:
    """An HTTP/1.0-style answer (no Content-Length, not chunked) is read up to the close."""
    connections = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"n": 1, ')
        await writer.drain()
        writer.write(b'"conn": %d}' % connections)
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        first = await _get(transport, f"http://127.0.0.1:{port}/version")
        second = await _get(transport, f"http://127.0.0.1:{port}/version")
    finally:
        server.close()
        await server.wait_closed()
    assert first.json() == {"n": 1, "conn": 1}
    assert second.json() == {"n": 1, "conn": 2}  # the closed connection was not reused
