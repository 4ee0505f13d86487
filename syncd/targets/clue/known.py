"""The auths of one CLUe place by user key, as one session has seen them.

A create is sent only after the place's auths were looked up by the person's key, so a
create that is retried — within the run (the engine's backoff), on a later run (a
"pending" or failed record in the ledger) or after a crash between CLUe's answer and the
ledger's commit — finds the auth the first try made instead of making a second one,
whether CLUe refuses a duplicate `user.key` or (*unverified*) accepts it.

Reading the whole list for every create would make a bulk enrolment quadratic, so the
list is read once per session, when first needed, and kept in step with this session's
own writes. After a write whose outcome is unknown (timeout, dropped connection, 5xx)
the copy is dropped (`forget_all`): the next lookup reads the list again. Auths made in
the CLUe console during a session are not seen until then; a CLUe that refuses
duplicates answers such a create with AuthKeyExists, which the session resolves by a
fresh lookup.

*Unverified*: that an auth CLUe has created shows in the list at once (a list served
from a lagging replica would hide it; nothing public says either way).
"""

from __future__ import annotations

from collections.abc import Sequence

from syncd.targets.clue.client import ClueAuth, ClueClient, DuplicateAuths


class KnownAuths:
    """The place's auths by user key, read from `client` when first needed."""

    def __init__(self, client: ClueClient) -> None:
        self._client = client
        self._by_id: dict[int, ClueAuth] | None = None
        self._by_key: dict[str, set[int]] = {}

    async def lookup(self, key: str, *, fresh: bool = False) -> Sequence[ClueAuth]:
        """Return every auth whose user key is `key` (usually none or one), by authId.

        `fresh`: read the list again first (to confirm that an auth is gone). Raise
        ClueError if the list cannot be read (AuthListUnavailable if it is missing).
        """
        if fresh or self._by_id is None:
            await self._read()
        assert self._by_id is not None
        return tuple(self._by_id[i] for i in sorted(self._by_key.get(key, ())))

    async def one(self, key: str, *, fresh: bool = False) -> ClueAuth | None:
        """Return the auth whose user key is `key`, or None.

        Raise DuplicateAuths if the place holds several: which one syncd made is not
        guessed (an administrator removes the others in the CLUe console).
        """
        found = await self.lookup(key, fresh=fresh)
        if len(found) > 1:
            ids = ", ".join(str(a.auth_id) for a in found)
            raise DuplicateAuths(
                f"CLUe holds {len(found)} auths with the same user.key (authIds {ids}); "
                "remove all but one in the CLUe console"
            )
        return found[0] if found else None

    def written(self, auth: ClueAuth) -> None:
        """Note that `auth` now exists as written (a create or an update answered)."""
        if self._by_id is None:
            return
        self.removed(auth.auth_id)
        self._by_id[auth.auth_id] = auth
        self._by_key.setdefault(auth.user_key, set()).add(auth.auth_id)

    def removed(self, auth_id: int) -> None:
        """Note that auth `auth_id` is gone (a delete answered)."""
        if self._by_id is None:
            return
        old = self._by_id.pop(auth_id, None)
        if old is not None:
            self._by_key.get(old.user_key, set()).discard(auth_id)

    def forget_all(self) -> None:
        """Drop the copy: a write's outcome is unknown, so read the list again next time."""
        self._by_id = None
        self._by_key = {}

    async def _read(self) -> None:
        by_id: dict[int, ClueAuth] = {}
        by_key: dict[str, set[int]] = {}
        async for auth in self._client.iter_auths():
            by_id[auth.auth_id] = auth
            by_key.setdefault(auth.user_key, set()).add(auth.auth_id)
        self._by_id, self._by_key = by_id, by_key
