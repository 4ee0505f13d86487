"""The CLUe client's exceptions, and which one an HTTP status or transport error means.

The tree is drawn in `syncd.targets.clue.client`, which re-exports every class here.
"""

from __future__ import annotations

from collections.abc import Callable

from syncd.errors import PermanentTargetError, TargetError, TemporaryTargetError


class ClueError(TargetError):
    """A failure talking to CLUe; `status` is the HTTP status when there was an answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ClueUnavailable(ClueError, TemporaryTargetError):
    """CLUe did not answer usefully (5xx, timeout, connection error): retry later."""


class ClueServerError(ClueUnavailable):
    """CLUe answered 5xx to one request: it is up; the failure is this record's (a run
    of them is a storm: `engine.apply`)."""

    target_level = False


class ClueBadAnswer(ClueServerError):
    """CLUe answered a write with an identifier syncd cannot use (an authId that is not a
    positive integer, a user.key with control characters): nothing of it is stored, and
    the write may have been carried out (the next lookup by key finds it)."""


class ClueRateLimited(ClueError, TemporaryTargetError):
    """CLUe kept answering 429 after every allowed retry: retry later."""


class ClueKeyRefused(ClueError, PermanentTargetError):
    """CLUe refused the API key (401/403): fix the configured key."""

    target_level = True


class ClueTlsError(ClueError, PermanentTargetError):
    """The server's certificate is not trusted: configure `ca_file` for a private CA."""

    target_level = True


class ClueRejected(ClueError, PermanentTargetError):
    """CLUe refused the request (400 validation or another 4xx); carries its message."""


class AuthKeyExists(ClueError, PermanentTargetError):
    """An auth with this `user.key` already exists in the place."""


class UnknownAuth(ClueError, PermanentTargetError):
    """No auth with this id in the place (404 on an auth's path)."""


class DuplicateAuths(ClueError, PermanentTargetError):
    """The place holds more than one auth with this `user.key` (a CLUe that accepts
    duplicates, written to before syncd looked keys up): which one is meant is not
    guessed; an administrator removes the extra ones."""


class AuthListUnavailable(ClueRejected):
    """The auths list (GET on the collection path) is refused or missing: without it an
    auth cannot be looked up by key, so no create is sent (it might duplicate)."""

    target_level = True


NotFound = Callable[[str], ClueError]


def error_for_status(status: int, what: str, message: str, not_found: NotFound | None) -> ClueError:
    """Return the ClueError an HTTP error `status` means; `message` is the server's, cut.

    `not_found` builds the error for a 404 on an item path (UnknownAuth); without it a
    404 is a ClueRejected (a wrong place id or path).
    """
    if status in (401, 403):
        return ClueKeyRefused(
            f"{what}: CLUe refused the API key (HTTP {status}); check the configured api_key",
            status,
        )
    if status == 409:  # a 400 that says "already exists" stays a 400: never a body text
        return AuthKeyExists(f"{what}: user.key already exists: {message}", status)
    if status == 404 and not_found is not None:
        error = not_found(f"{what}: not found (HTTP 404): {message}")
        error.status = status
        return error
    if status >= 500:
        return ClueServerError(f"{what}: CLUe answered HTTP {status}: {message}", status)
    if status == 408:
        return ClueUnavailable(f"{what}: CLUe answered HTTP {status}: {message}", status)
    return ClueRejected(f"{what}: CLUe refused the request (HTTP {status}): {message}", status)
