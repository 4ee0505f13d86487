"""`syncd probe` for one CLUe place: check on the real service what syncd assumes.

Safe on a production place: the only auth it writes has the reserved key `PROBE_KEY`,
is INACTIVE, valid only in the past (it opens no door even if a check misfired) and has
no credential. Leftovers of an earlier probe are deleted first; every auth with that key
is deleted at the end and the list is read again to check (a failure there fails the
probe loudly). It writes nothing else.

The checks: the auth list answers at the configured path (else: whether the other
layout does, and the `api_base` to set); the events query answers; a new auth shows in
the list at once (syncd looks an auth up by key there before it creates one); what CLUe
does with a second auth of the same `user.key` (refuses, or makes a second: syncd never
relies on either); an auth can be updated and deleted at the item path.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.config import ClueTargetConfig
from syncd.errors import cut
from syncd.targets.clue.client import AuthKeyExists, ClueAuth, ClueClient, ClueError
from syncd.targets.clue.timing import epoch_ms
from syncd.targets.probing import ProbeReport

PROBE_KEY = "syncd-probe"
"""The reserved `user.key` of the probe's auth (never a person's key)."""
LAYOUTS = ("/v1", "/v1/be")
"""The two auth path layouts of the CLUe guides (newer, older)."""

ClientFor = Callable[[ClueTargetConfig], ClueClient]


async def probe_clue(config: ClueTargetConfig, client_for: ClientFor, report: ProbeReport) -> None:
    """Run every check; add the findings to `report`; never leave a probe auth behind.

    `client_for(config)` returns a (not yet opened) client for a configuration, so the
    other path layout can be tried. Raise a ClueError only when the place cannot be
    reached at all (key refused, TLS, timeouts).
    """
    async with client_for(config) as client:
        listed = await _list_check(config, client, client_for, report)
        await _events_check(client, report)
        if not listed:
            return  # without the list nothing can be looked up or cleaned: write nothing
        try:
            await _remove_all(client)
            await _write_checks(client, report)
        finally:
            report.cleanup_error = await _cleanup(client)


async def _list_check(
    config: ClueTargetConfig, client: ClueClient, client_for: ClientFor, report: ProbeReport
) -> bool:
    collection, _ = config.clue_auth_paths()
    try:
        await _first(client)
    except ClueError as exc:
        other = await _other_layout(config, client_for)
        report.add(
            "the auth list answers at the configured path",
            f"{collection}: {cut(str(exc), 80)}",
            False,
            "looks each auth up by key in this list before creating one: without it, "
            "no auth is created",
            f'api_base = "{other}"' if other else "api_base / auth_path (neither layout answered)",
        )
        return False
    report.add(
        "the auth list answers at the configured path",
        f"{collection}: answered",
        True,
        "looks each auth up by key in this list before creating one",
    )
    return True


async def _other_layout(config: ClueTargetConfig, client_for: ClientFor) -> str | None:
    """Return the other `api_base` when its auth list answers, else None."""
    for base in LAYOUTS:
        if base == config.api_base:
            continue
        other = config.model_copy(update={"api_base": base, "auth_path": None})
        try:
            async with client_for(other) as client:
                await _first(client)
        except ClueError:
            continue
        return base
    return None


async def _first(client: ClueClient) -> None:
    async for _ in client.iter_auths(page_size=1):
        return


async def _events_check(client: ClueClient, report: ProbeReport) -> None:
    now = epoch_ms(datetime.now(UTC))
    try:
        async for _ in client.iter_events(since_ms=now - 60_000, until_ms=now, page_size=1):
            break
    except ClueError as exc:
        report.add(
            "the events query answers (events_path)",
            cut(str(exc), 80),
            False,
            "`syncd events collect` fails for this place",
            "events_path",
        )
        return
    report.add("the events query answers (events_path)", "answered", True, "reads events")


def probe_body(name: str = "syncd probe") -> dict[str, Any]:
    """Return the probe's auth: INACTIVE, valid only in the past, no credential."""
    start = datetime(2000, 1, 1, tzinfo=UTC)
    auth = {
        "activeStatus": "INACTIVE",
        "startTime": epoch_ms(start),
        "endTime": epoch_ms(start + timedelta(days=1)),
        "doorAccessType": "ALL_DOOR",
        "scheduleType": "ALWAYS",
        "credentials": {"cards": []},
    }
    return {"user": {"key": PROBE_KEY, "name": name}, "auth": auth}


async def _write_checks(client: ClueClient, report: ProbeReport) -> None:
    try:
        created = await client.create_auth(probe_body())
    except ClueError as exc:
        report.add(
            "an inactive auth can be created",
            cut(str(exc), 80),
            False,
            "every create would fail",
            "auth_path",
        )
        return
    found = await _probe_auths(client)
    report.add(
        "a new auth shows in the list at once",
        f"{len(found)} auth(s) with the probe key listed",
        created.auth_id in {auth.auth_id for auth in found},
        "after a create whose answer was lost, finds the auth by key before creating again",
        "" if found else "tell the syncd maintainers: the list lags behind creates",
    )
    await _duplicate_check(client, report)
    await _update_check(client, created, report)


async def _duplicate_check(client: ClueClient, report: ProbeReport) -> None:
    try:
        await client.create_auth(probe_body())
    except AuthKeyExists as exc:
        observed = f"refused (HTTP {exc.status})"
    except ClueError as exc:
        observed = f"refused otherwise: {cut(str(exc), 60)}"
    else:
        observed = "accepted: a second auth with the same key was made"
    report.add(
        "a second auth with the same user.key",
        observed,
        True,
        "never relies on it: looks the key up before every create",
    )


async def _update_check(client: ClueClient, created: ClueAuth, report: ProbeReport) -> None:
    try:
        await client.update_auth(created.auth_id, probe_body("syncd probe (updated)"))
    except ClueError as exc:
        report.add(
            "an auth can be updated at the item path",
            cut(str(exc), 80),
            False,
            "updates and disables would fail: leavers keep access until deleted by hand",
            "auth_item_path",
        )
        return
    report.add("an auth can be updated at the item path", "updated", True, "updates, disables")


async def _probe_auths(client: ClueClient) -> list[ClueAuth]:
    return [auth async for auth in client.iter_auths() if auth.user_key == PROBE_KEY]


async def _remove_all(client: ClueClient) -> None:
    for auth in await _probe_auths(client):
        await client.delete_auth(auth.auth_id)


async def _cleanup(client: ClueClient) -> str | None:
    """Delete every probe auth and check the list again; return what went wrong."""
    try:
        await _remove_all(client)
        left = await _probe_auths(client)
    except ClueError as exc:
        return cut(str(exc))
    return f"{len(left)} auth(s) with key {PROBE_KEY} remain" if left else None
