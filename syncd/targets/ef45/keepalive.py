"""One keep-alive HTTP/1.1 connection to a plain-http terminal, as an httpx transport.

The EF-45 answers one request at a time on `http://…:9980`, so a session needs exactly
one connection and no pool, proxy, TLS or HTTP/2. httpx's own stack (AsyncClient over
httpcore over anyio) cost about 0.9 ms of CPU a request here, eight times the request
itself, which made the client, not the terminal, the limit of a large apply. This
transport keeps httpx's `Request`, `Response` and exception types (so the client, its
error handling and the test seam are unchanged) and does the wire work with asyncio and
`httptools`, the C parser uvicorn uses.

Contract: requests go out one at a time (a second caller waits); the body is sent whole
(the request must not be a stream); `extensions["timeout"]` gives the `connect` and
`read` limits in seconds (`read` bounds the whole answer, not one read: a body dripping
a byte at a time ends there too); `extensions["max_body_bytes"]` bounds the answer's
body (default `DEFAULT_MAX_BODY`): a declared Content-Length over it, or more bytes than
it arriving (chunked or ended by the close alike), fail with `limits.BodyTooLarge`
before more is kept, and an answer in a content encoding fails with
`limits.EncodedBody` (`syncd.targets.limits`). A connection whose answer did not arrive
completely (timeout, cancellation, a drop, a parse error, a limit) is closed, so a late
answer can never be taken for the next request's. An answer with neither Content-Length
nor chunked encoding (HTTP/1.0 style) ends when the terminal closes the connection. The
errors are httpx's: `ConnectError`, `ConnectTimeout`, `ReadTimeout`, `RemoteProtocolError`,
and `UnsupportedProtocol` (anything but `http://`), plus the two of `limits` (httpx
`TransportError`s as well).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import httptools
import httpx

from syncd.targets.limits import BodyTooLarge, ByteBudget, EncodedBody, MiB, check_head

DEFAULT_MAX_BODY = 8 * MiB


class _Answer(asyncio.Protocol):
    """Reads one response at a time off the connection (httptools callbacks)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._waiter: asyncio.Future[httpx.Response] | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._budget = ByteBudget(DEFAULT_MAX_BODY)
        self._failed = False  # the answer was refused: nothing more of it is kept
        self._ends_at_close = False  # an answer without length: its body ends with the close

    def expect(self, waiter: asyncio.Future[httpx.Response], max_body: int) -> None:
        """Start reading the next response into `waiter`, its body at most `max_body` bytes."""
        self._waiter = waiter
        self._parser = httptools.HttpResponseParser(self)
        self._headers = []
        self._body = []
        self._budget = ByteBudget(max_body)
        self._failed = False
        self._ends_at_close = False

    # asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream socket's transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._ends_at_close and exc is None:
            self._complete(keep_alive=False)
        else:
            self._fail("the terminal closed the connection before answering in full")

    def data_received(self, data: bytes) -> None:
        if self._failed:
            return  # the connection is closing: what still arrives is dropped unread
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if not self._failed:
                self._fail(f"unreadable HTTP answer: {exc}")

    # httptools callbacks --------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        names = {name.lower(): value.lower() for name, value in self._headers}
        chunked = b"chunked" in names.get(b"transfer-encoding", b"")
        self._ends_at_close = b"content-length" not in names and not chunked
        try:
            check_head(httpx.Headers(self._headers), self._budget.limit)
        except (BodyTooLarge, EncodedBody) as exc:
            self._refuse(exc)

    def on_body(self, body: bytes) -> None:
        if self._failed:
            return
        try:
            self._budget.take(len(body))
        except BodyTooLarge as exc:
            self._refuse(exc)
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._complete(keep_alive=self._parser.should_keep_alive())

    def _complete(self, *, keep_alive: bool) -> None:
        if self._failed:
            return
        waiter, self._waiter = self._waiter, None
        self._ends_at_close = False
        if waiter is None or waiter.done():
            self._fail("an answer nobody asked for")
            return
        response = httpx.Response(
            self._parser.get_status_code(),
            headers=self._headers,
            content=b"".join(self._body),
            extensions={"keep_alive": keep_alive},
        )
        waiter.set_result(response)

    def _fail(self, message: str) -> None:
        self._refuse(httpx.RemoteProtocolError(message))

    def _refuse(self, error: httpx.TransportError) -> None:
        """Fail the waiting request with `error`, drop what was read, close the connection."""
        self._failed = True
        self._body = []
        self._ends_at_close = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        if self.transport is not None:
            self.transport.close()


class KeepAliveTransport(httpx.AsyncBaseTransport):
    """One HTTP/1.1 keep-alive connection, opened on first use and again after a close."""

    def __init__(self) -> None:
        self._answer: _Answer | None = None
        self._turn = asyncio.Lock()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` and return its complete answer (see the module's contract)."""
        if request.url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"only http:// is served here: {request.url.scheme}")
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        async with self._turn:
            answer = await self._connection(request, timeouts.get("connect"))
            waiter: asyncio.Future[httpx.Response] = asyncio.get_running_loop().create_future()
            max_body = int(request.extensions.get("max_body_bytes", DEFAULT_MAX_BODY))
            answer.expect(waiter, max_body)
            assert answer.transport is not None
            answer.transport.write(_wire(request))
            try:
                async with asyncio.timeout(timeouts.get("read")):
                    response = await waiter
            except TimeoutError:
                self._drop()
                raise httpx.ReadTimeout("no answer in time", request=request) from None
            except httpx.TransportError as exc:
                self._drop()  # failed: the answer may still come
                exc.request = request
                raise
            except BaseException:
                self._drop()  # cancelled: the answer may still come
                raise
            if not response.extensions["keep_alive"]:
                self._drop()
        response.request = request
        return response

    async def aclose(self) -> None:
        """Close the connection (a later request opens a new one)."""
        self._drop()

    async def _connection(self, request: httpx.Request, timeout: float | None) -> _Answer:
        if self._answer is not None and not self._answer.closed:
            return self._answer
        url = request.url
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, answer = await loop.create_connection(_Answer, url.host, url.port or 80)
        except TimeoutError:
            raise httpx.ConnectTimeout("no connection in time", request=request) from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc), request=request) from None
        self._answer = answer
        return answer

    def _drop(self) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and answer.transport is not None:
            answer.transport.close()


def _wire(request: httpx.Request) -> bytes:
    """Return `request` as HTTP/1.1 bytes: request line, headers, body."""
    body = request.content  # httpx.RequestNotRead for a stream: never sent here
    lines = [b"%s %s HTTP/1.1" % (request.method.encode(), request.url.raw_path)]
    lines += [b"%s: %s" % (name, value) for name, value in request.headers.raw]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
