"""The emulated EF-45's user-info table: uuid → record, with an index of cards.

The device refuses a second user info with the same card. Checking that by scanning
every record made each add cost O(users), so an enrolment of thousands of users grew
quadratically; the index answers in O(1). Every write to the table goes through the
dict methods overridden here, so the index cannot drift from the records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Record = dict[str, Any]


def card_key(record: Mapping[str, Any]) -> str:
    """Return the card of `record` as the index keys it ("" for none): upper case."""
    return str(record.get("card") or "").upper()


class UserInfoTable(dict[str, Record]):
    """A dict of user infos that keeps `owners(card)` current on every write."""

    def __init__(self, items: Mapping[str, Record] | Iterable[tuple[str, Record]] = ()) -> None:
        super().__init__()
        self._owners: dict[str, set[str]] = {}
        self.update(items)

    def owners(self, card: str) -> set[str]:
        """Return the uuids whose user info holds `card` (any case); empty for none."""
        return set(self._owners.get(card.upper(), ())) if card else set()

    def __setitem__(self, uuid: str, record: Record) -> None:
        if uuid in self:
            self._forget(uuid)
        super().__setitem__(uuid, record)
        card = card_key(record)
        if card:
            self._owners.setdefault(card, set()).add(uuid)

    def __delitem__(self, uuid: str) -> None:
        self._forget(uuid)
        super().__delitem__(uuid)

    def pop(self, uuid: str, *default: Any) -> Any:
        """Remove `uuid` and return its record (or `default`), as `dict.pop`."""
        if uuid in self:
            self._forget(uuid)
        return super().pop(uuid, *default)

    def popitem(self) -> tuple[str, Record]:
        """Remove and return the last (uuid, record), as `dict.popitem`."""
        uuid, record = super().popitem()
        self._forget(uuid, record)
        return uuid, record

    def clear(self) -> None:
        """Remove every record."""
        super().clear()
        self._owners.clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Set each (uuid, record), as `dict.update`."""
        for uuid, record in dict(*args, **kwargs).items():
            self[uuid] = record

    def setdefault(self, uuid: str, default: Record | None = None) -> Record:
        """Return the record of `uuid`, setting it to `default` first if absent."""
        if uuid not in self:
            self[uuid] = default if default is not None else {}
        return self[uuid]

    def _forget(self, uuid: str, record: Record | None = None) -> None:
        card = card_key(record if record is not None else super().__getitem__(uuid))
        holders = self._owners.get(card)
        if holders is not None:
            holders.discard(uuid)
            if not holders:
                del self._owners[card]
