"""A plan told person by person, in the words an administrator uses.

`describe_people` turns a plan's device actions into one entry per person: their name
and key, and what happens ("hired: gets access to lobby, garage from 2027-01-04",
"leaves: access removed at lobby, hq", "card 2000021 → 2000022"). The words come from
the person as HR describes them (the source's person now, the ledger's person as syncd
last saw them), never from a device's encoding: cards are HR's decimal numbers, times
are in the site's zone. A PIN is only ever "PIN changed", never a value.

The entries are JSON-able dicts (the `people` list of the `syncd.plan/2` report), so
that a saved report re-renders without the engine (`syncd show`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, tzinfo
from typing import Any

from syncd.model import Action, Op, Person, Status


@dataclass(frozen=True, slots=True)
class Who:
    """One person of a plan as syncd last stored them (`before`) and as the source now
    describes them (`after`); either is None (new to syncd; gone from the source)."""

    before: Person | None = None
    after: Person | None = None

    @property
    def name(self) -> str:
        """The person's name as the source now gives it, else as last stored ("" if none)."""
        for person in (self.after, self.before):
            if person is not None and person.display_name:
                return person.display_name
        return ""


def when(moment: datetime, zone: tzinfo) -> str:
    """Return `moment` in `zone` as an admin reads it: the date alone at midnight and at
    23:59:59 (an HR end date: the whole day), else the date and the time to the minute
    (or second, when it has seconds)."""
    local = moment.astimezone(zone)
    if local.time() in (time(0, 0), time(23, 59, 59)):
        return f"{local:%Y-%m-%d}"
    return f"{local:%Y-%m-%d %H:%M:%S}" if local.second else f"{local:%Y-%m-%d %H:%M}"


def describe_people(
    actions: Iterable[Action],
    who: Mapping[str, Who],
    zone: tzinfo,
    now: datetime,
    limit: int = 0,
) -> list[dict[str, Any]]:
    """Return one entry per person with actions, in key order (the first `limit` people
    only, when given: a text report lists no more):

    {"key", "name", "what": [lines], "blocked": bool,
     "actions": [{"target", "op", "blocked", "changes": {field: [before, after]}}]}

    `who` gives the HR-level person before and after (missing: only the device records
    name them); the device changes arrive already redacted from the plan.
    """
    by_person: dict[str, list[Action]] = {}
    for action in actions:
        by_person.setdefault(action.person_key, []).append(action)
    entries = []
    keys = sorted(by_person)
    for key in keys[:limit] if limit > 0 else keys:
        mine = by_person[key]
        person = who.get(key, Who())
        entries.append(
            {
                "key": key,
                "name": person.name or _record_name(mine),
                "what": what_happens(mine, person, zone, now),
                "blocked": any(a.blocked for a in mine),
                "actions": [
                    {
                        "target": a.target,
                        "op": a.op.value,
                        "blocked": a.blocked,
                        "changes": {c.name: [c.before, c.after] for c in a.changes},
                    }
                    for a in mine
                ],
            }
        )
    return entries


def _record_name(actions: Sequence[Action]) -> str:
    """The name the device records give (EF-45: two fields; CLUe: one), for a person the
    ledger and the source no longer describe."""
    for action in actions:
        record = action.record
        split = " ".join(str(record.get(f) or "") for f in ("first_name", "last_name")).strip()
        if split or record.get("name"):
            return split or str(record.get("name"))
    return ""


def _targets(actions: Iterable[Action]) -> str:
    return ", ".join(dict.fromkeys(a.target for a in actions))


def what_happens(actions: Sequence[Action], who: Who, zone: tzinfo, now: datetime) -> list[str]:
    """Return the lines that say what `actions` do to one person, in admin words."""
    before, after = who.before, who.after
    gets = [a for a in actions if a.op is Op.CREATE and a.active_after]
    ahead = [a for a in actions if a.op is Op.CREATE and not a.active_after]
    removed = [a for a in actions if a.op is Op.DISABLE]
    deleted = [a for a in actions if a.op is Op.DELETE]
    updated = [a for a in actions if a.op is Op.UPDATE]
    lines: list[str] = []
    leaving = bool(removed) and _leaves(after, now)
    if gets or ahead:
        lines.append(_arrival(gets, ahead, before is None, after, zone, now))
    if removed:
        verb = "leaves: access removed at" if leaving else "access removed at"
        lines.append(f"{verb} {_targets(removed)}" + _until_note(after, zone, now, leaving))
    if deleted:
        lines.append(f"record deleted at {_targets(deleted)} (access was already removed)")
    if updated or not leaving:
        diffs = person_diffs(before, after, zone) if before and after else []
        if diffs and (updated or gets or removed):
            lines.extend(diffs)
        if updated:
            lines.append(f"updated at {_targets(updated)}" + _device_fields(updated, diffs))
    for action in actions:
        if action.blocked:
            lines.append(f"blocked at {action.target}: {action.blocked}")
    return lines


def _arrival(
    gets: Sequence[Action],
    ahead: Sequence[Action],
    new: bool,
    after: Person | None,
    zone: tzinfo,
    now: datetime,
) -> str:
    head = "hired: " if new else ""
    start = after.valid_from if after is not None else None
    parts = []
    if gets:
        since = f" from {when(start, zone)}" if start is not None and start > now else ""
        parts.append(f"gets access to {_targets(gets)}{since}")
    if ahead:
        since = f" (access from {when(start, zone)})" if start is not None else ""
        parts.append(f"created ahead at {_targets(ahead)}, no access yet{since}")
    until = _until_note(after, zone, now, False) if gets else ""
    return head + "; ".join(parts) + until


def _until_note(after: Person | None, zone: tzinfo, now: datetime, leaving: bool) -> str:
    end = after.valid_until if after is not None else None
    if end is None:
        return ""
    if leaving and end <= now:
        return f" (access ended {when(end, zone)})"
    return "" if leaving else f", access until {when(end, zone)}"


def _leaves(after: Person | None, now: datetime) -> bool:
    """True when the person no longer may come at all (gone, disabled or past their end)."""
    if after is None or after.status is Status.DISABLED:
        return True
    return after.valid_until is not None and after.valid_until <= now


def _device_fields(updated: Sequence[Action], diffs: Sequence[str]) -> str:
    """Name the device fields when the HR-level diff does not explain the update (a
    retried record, a repaired drift, a changed mapping)."""
    if diffs:
        return ""
    fields = sorted({c.name for a in updated for c in a.changes})
    return f" ({', '.join(fields)})" if fields else ""


def person_diffs(before: Person, after: Person, zone: tzinfo) -> list[str]:
    """Return the HR-level differences of two versions of a person, one line each:
    "name Schmidt → Lindqvist-Schmidt", "card 2000021 → 2000022", "access until …",
    "PIN changed" (never a PIN)."""
    lines = []
    if before.display_name != after.display_name:
        lines.append(_name_change(before, after))
    if before.cards != after.cards:
        label = "card" if max(len(before.cards), len(after.cards)) <= 1 else "cards"
        lines.append(f"{label} {_cards(before.cards)} → {_cards(after.cards)}")
    lines += _window_change("access from", before.valid_from, after.valid_from, zone)
    lines += _window_change("access until", before.valid_until, after.valid_until, zone)
    if before.status != after.status:
        lines.append(
            "access restored (active in HR again)"
            if after.status is Status.ACTIVE
            else "disabled in HR"
        )
    if before.pin != after.pin:
        changed = "set" if not before.pin else "removed" if not after.pin else "changed"
        lines.append(f"PIN {changed}")
    if before.groups != after.groups:
        lines.append(_groups_change(before.groups, after.groups))
    return lines


def _name_change(before: Person, after: Person) -> str:
    if before.first_name == after.first_name:
        return f"name {before.last_name or '∅'} → {after.last_name or '∅'}"
    if before.last_name == after.last_name:
        return f"first name {before.first_name or '∅'} → {after.first_name or '∅'}"
    return f"name {before.display_name or '∅'} → {after.display_name or '∅'}"


def _cards(cards: Sequence[int]) -> str:
    return ", ".join(str(c) for c in cards) if cards else "none"


def _window_change(
    label: str, before: datetime | None, after: datetime | None, zone: tzinfo
) -> list[str]:
    if before == after:
        return []
    if after is None:
        return [f"{label}: no limit any more (was {when(before, zone)})"] if before else []
    if before is None:
        return [f"{label} {when(after, zone)}"]
    return [f"{label} {when(before, zone)} → {when(after, zone)}"]


def _groups_change(before: frozenset[str], after: frozenset[str]) -> str:
    parts = []
    if added := sorted(after - before):
        parts.append("+" + ", +".join(added))
    if gone := sorted(before - after):
        parts.append("-" + ", -".join(gone))
    return "groups " + " ".join(parts)
