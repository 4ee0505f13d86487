"""Templates: literal text with `{attribute|filter|filter:arg}` placeholders.

`parse_template(text, zone, split=…)` compiles a template once (raising
`TemplateSyntaxError` with the reason); `Template.values(record)` evaluates it against one
raw record.

- A template without braces is a constant.
- A template that is exactly one placeholder yields that placeholder's values, typed (a
  datetime, an int, several values of a multi-valued attribute).
- A template mixing text and placeholders yields one text: each placeholder must have at
  most one value (use `|first`), a missing one reads as empty.
- `{{` and `}}` are literal braces. A filter argument cannot contain `|` or `}`.

Attribute names are looked up exactly, then case-insensitively (LDAP servers return names
in their own spelling). Empty and whitespace-only values count as missing. With `split`
set (multi-valued Person fields), a template that is exactly one placeholder splits a
single text value (a CSV cell) on it into several values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from syncd.mapping.filters import (
    Filter,
    FilterError,
    FilterSpecError,
    Item,
    Values,
    build_filter,
    to_text,
)
from syncd.model import RawRecord, RawValue

_MEMO_SIZE = 4096


class TemplateSyntaxError(ValueError):
    """A template cannot be compiled; the message says why."""


class PlaceholderError(Exception):
    """A placeholder failed on one record: which attribute, why, and the offending value."""

    def __init__(self, attribute: str, reason: str, value: Item | None) -> None:
        super().__init__(f"{attribute}: {reason}")
        self.attribute = attribute
        self.reason = reason
        self.value = value


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One `{attribute|filters}`: the attribute and its compiled filter chain.

    Filters are pure, so the result for a plain text value is memoized: HR columns such as
    status, department and dates repeat a few values across 100 000 rows.
    """

    attribute: str
    filters: tuple[Filter, ...]
    split: str = ""
    memo: dict[str, Values] = field(default_factory=dict, compare=False, repr=False)

    def values(self, record: RawRecord) -> Values:
        """Return the attribute's values after every filter; raise PlaceholderError."""
        raw = record.get(self.attribute)
        if type(raw) is not str:
            return self._apply(lookup(record, self.attribute, self.split))
        values = self.memo.get(raw)
        if values is not None:
            return values
        if self.split and self.split in raw:
            values = self._apply(lookup(record, self.attribute, self.split))
        else:
            values = self._apply((raw,) if raw and not raw.isspace() else ())
        if len(self.memo) >= _MEMO_SIZE:
            self.memo.clear()  # a column of unique values: keep memory bounded
        self.memo[raw] = values
        return values

    def _apply(self, values: Values) -> Values:
        try:
            for function in self.filters:
                values = function(values)
        except FilterError as exc:
            raise PlaceholderError(self.attribute, exc.reason, exc.value) from None
        return values


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled template; `attributes` names every source attribute it reads."""

    text: str
    parts: tuple[str | Placeholder, ...]
    single: Placeholder | None = None  # set when the template is exactly one placeholder
    fixed: Values | None = None  # set when the template is a constant

    @property
    def attributes(self) -> tuple[str, ...]:
        """The attributes of the placeholders, in order of appearance, without repeats."""
        names = (part.attribute for part in self.parts if isinstance(part, Placeholder))
        return tuple(dict.fromkeys(names))

    @property
    def is_constant(self) -> bool:
        """True when the template has no placeholder."""
        return not self.attributes

    def values(self, record: RawRecord) -> Values:
        """Evaluate the template on `record`; raise PlaceholderError naming the attribute."""
        if self.single is not None:
            return self.single.values(record)
        if self.fixed is not None:
            return self.fixed
        pieces: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                pieces.append(part)
                continue
            values = part.values(record)
            if len(values) > 1:
                reason = f"has {len(values)} values where one is expected (use |first)"
                raise PlaceholderError(part.attribute, reason, None)
            if values:
                try:
                    pieces.append(to_text(values[0]))
                except FilterError as exc:
                    raise PlaceholderError(part.attribute, exc.reason, None) from None
        text = "".join(pieces)
        return (text,) if text.strip() else ()


def lookup(record: RawRecord, name: str, split: str) -> Values:
    """Return the values of attribute `name` in `record` (empty tuple when absent or blank)."""
    raw: RawValue | None = record.get(name)
    if raw is None:
        folded = name.casefold()
        raw = next((v for k, v in record.items() if k.casefold() == folded), None)
    if raw is None:
        return ()
    if isinstance(raw, str):
        if split and split in raw:
            return tuple(piece.strip() for piece in raw.split(split) if piece.strip())
        return (raw,) if raw and not raw.isspace() else ()
    if isinstance(raw, bytes):
        return (raw,) if raw else ()
    return tuple(v for v in raw if v and not (isinstance(v, str) and v.isspace()))


def parse_template(text: str, zone: ZoneInfo, *, split: str = "") -> Template:
    """Compile `text`; raise TemplateSyntaxError (bad braces, empty name, bad filter).

    `split` (the list separator of a multi-valued field) applies when `text` is exactly one
    placeholder.
    """
    parts: list[str | Placeholder] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in "{}" and text[i : i + 2] == char * 2:
            literal.append(char)
            i += 2
        elif char == "}":
            raise TemplateSyntaxError(f"unmatched '}}' at position {i} (write '}}}}')")
        elif char == "{":
            end = text.find("}", i)
            if end < 0:
                raise TemplateSyntaxError(f"unclosed '{{' at position {i}")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_placeholder(text[i + 1 : end], zone))
            i = end + 1
        else:
            literal.append(char)
            i += 1
    if literal or not parts:
        parts.append("".join(literal))
    only = parts[0] if len(parts) == 1 and isinstance(parts[0], Placeholder) else None
    if only is not None and split:
        only = parts[0] = Placeholder(only.attribute, only.filters, split)
    constant = "".join(p for p in parts if isinstance(p, str))
    fixed = None if any(isinstance(p, Placeholder) for p in parts) else _blank_to_none(constant)
    return Template(text, tuple(parts), only, fixed)


def _blank_to_none(text: str) -> Values:
    """Return (text,), or () for a blank constant (which then reads as missing)."""
    return (text,) if text.strip() else ()


def _placeholder(body: str, zone: ZoneInfo) -> Placeholder:
    if "{" in body:
        raise TemplateSyntaxError(f"'{{' inside placeholder {{{body}}}")
    name, *specs = body.split("|")
    attribute = name.strip()
    if not attribute:
        raise TemplateSyntaxError(f"placeholder {{{body}}} names no attribute")
    filters: list[Filter] = []
    for spec in specs:
        filter_name, sep, arg = spec.partition(":")
        try:
            filters.append(build_filter(filter_name.strip(), arg.strip() if sep else None, zone))
        except FilterSpecError as exc:
            raise TemplateSyntaxError(str(exc)) from None
    return Placeholder(attribute, tuple(filters))
