"""The people a source's defective records disable (`SourceRead.disabled`).

A defective record that says disabled, or whose validity cannot be read, disables its
person (`syncd.sources.salvage`): the engine takes such a key as present and DISABLED, so
the plan treats them as any leaver (disable on every target holding an active record,
delete after the grace period). The person is the ledger's last one with its status set
to DISABLED; a key the ledger does not know becomes a minimal disabled Person, which no
target holds, so nothing is done for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from syncd.model import Person, Status


def disabled_people(keys: Iterable[str], stored: Mapping[str, Person]) -> dict[str, Person]:
    """Given the keys a read disables and the ledger's people, return key → disabled Person."""
    people: dict[str, Person] = {}
    for key in keys:
        known = stored.get(key)
        if known is not None:
            people[key] = dataclasses.replace(known, status=Status.DISABLED)
        else:
            people[key] = Person(key=key, first_name="", last_name="", status=Status.DISABLED)
    return people
