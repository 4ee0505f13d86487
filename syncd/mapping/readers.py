"""Field readers: one compiled callable per Person field, the hot path of a large read.

`CompiledMapping` builds a reader per field once, at load time, so that mapping a record
is a handful of calls instead of a walk through templates and filters. A reader is a
function of the raw record alone and returns exactly what the general evaluation returns
(it is a shortcut to it or a memo in front of it), raising the same `FieldError` when the
record does not map.

HR columns such as status, department and the dates repeat a few thousand values across
100 000 rows, so the readers of fields that read one attribute remember their result per
cell text (`by_cell`); for columns of unique values (e-mail, badge number) that memo soon
turns itself off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from syncd.model import RawRecord

T = TypeVar("T")

MEMO_SIZE = 16_384
"""Cells remembered per field: above the ~6 000 distinct start dates of a 16-year export
(a smaller memo would be emptied before it pays), small enough to stay a few MB."""


def by_cell(
    attribute: str, compute: Callable[[RawRecord], T], size: int = MEMO_SIZE
) -> Callable[[RawRecord], T]:
    """Return `compute` remembered per text value of `attribute`.

    Contract for the caller: when the record's value of `attribute` (exact spelling) is
    text, `compute(record)` is pure, depends on that text alone (true of a template that
    is exactly one placeholder), and returns an immutable value. Any other value (an LDAP
    list, bytes, an attribute absent or spelled otherwise) goes to `compute` unremembered.
    Failures are not remembered: the same text raises the same error again. Never use it
    for an attribute holding secrets: the memo lives as long as the mapping.

    The memo holds `size` results at most. When it fills having been hit fewer times than
    it missed, the column is taken as one of unique values and the memo stops for good:
    remembering there only costs (a third of a microsecond a row).
    """
    table: dict[str, T] = {}
    hits = 0
    remembering = True

    def read(raw: RawRecord) -> T:
        nonlocal hits, remembering
        cell = raw.get(attribute)
        if type(cell) is not str or not remembering:
            return compute(raw)
        if cell in table:
            hits += 1
            return table[cell]
        value = compute(raw)
        if len(table) >= size:
            remembering = hits >= size
            hits = 0
            table.clear()  # bounded memory either way
        if remembering:
            table[cell] = value
        return value

    return read


def bare_text(attribute: str, fallback: Callable[[RawRecord], str]) -> Callable[[RawRecord], str]:
    """Return the reader of a text field whose template is exactly "{attribute}".

    A text value (a CSV cell) is stripped, as the general evaluation would strip it; any
    other value goes to `fallback`, the general evaluation.
    """

    def read(raw: RawRecord) -> str:
        cell = raw.get(attribute)
        return cell.strip() if type(cell) is str else fallback(raw)

    return read


def constant(value: T) -> Callable[[RawRecord], T]:
    """Return a reader that ignores the record and returns `value` (immutable)."""

    def read(raw: RawRecord) -> T:
        return value

    return read
