"""The named filters of the mapping language.

A placeholder's values pass through its filters left to right. Values are a tuple of
items (an attribute with no value is the empty tuple; a CSV cell or a single-valued LDAP
attribute is one item). Most filters work item by item; `first` and `default` look at the
whole tuple. An item is text, bytes (LDAP binary attributes), an int (card numbers,
FILETIME), a bool (`uac_disabled`) or a timezone-aware datetime.

`build_filter(name, arg, zone)` returns the filter or raises `FilterSpecError` (a load-time
problem: unknown name, missing or needless argument). A filter meeting a value it cannot
handle raises `FilterError(reason, value)`; the mapping turns it into a RecordError and
decides whether the value may be shown (never for a PIN).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

Item = str | bytes | int | bool | datetime
Values = tuple[Item, ...]
Filter = Callable[[Values], Values]

_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
_FILETIME_NEVER = 0x7FFFFFFFFFFFFFFF
_UAC_ACCOUNTDISABLE = 0x2
_MAX_CARD_DIGITS = 32
_STRPTIME_DIRECTIVES = frozenset("aAwdbBmyYHIpMSfzZjUWcxXGuV%")
_GENERALIZED_TIME = re.compile(
    r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})?(\d{2})?(?:[.,](\d+))?(Z|[+-]\d{2}(?:\d{2})?)?"
)
_HEX_NOISE = re.compile(r"[\s:-]")
_HEX_DIGITS = re.compile(r"[0-9a-fA-F]+")


class FilterSpecError(ValueError):
    """A filter named in a template does not exist or has a wrong argument (load time)."""


class FilterError(Exception):
    """A filter cannot handle a value (map time): `reason` never contains the value."""

    def __init__(self, reason: str, value: Item | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.value = value


def to_text(item: Item) -> str:
    """Return `item` as text; raise FilterError for bytes that are not UTF-8."""
    if isinstance(item, str):
        return item
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int):
        return str(item)
    if isinstance(item, datetime):
        return item.isoformat()
    try:
        return item.decode("utf-8")
    except UnicodeDecodeError:
        raise FilterError("binary value is not text (use |guid)") from None


def _each(function: Callable[[Item], Item | None]) -> Filter:
    """Return a filter applying `function` to every item; a None result drops the item."""

    def apply(values: Values) -> Values:
        if len(values) == 1:  # the common case, kept cheap
            result = function(values[0])
            return () if result is None else (result,)
        out = [function(item) for item in values]
        return tuple(item for item in out if item is not None)

    return apply


def _text_filter(function: Callable[[str], str]) -> Filter:
    def apply(values: Values) -> Values:
        if len(values) == 1 and type(values[0]) is str:
            return (function(values[0]),)
        return tuple(function(to_text(item)) for item in values)

    return apply


def _first(values: Values) -> Values:
    return values[:1]


def _default(arg: str) -> Filter:
    fallback: Values = (arg,) if arg else ()

    def apply(values: Values) -> Values:
        for item in values:
            if not isinstance(item, str) or item.strip():
                return values
        return fallback

    return apply


def check_strptime_format(fmt: str) -> None:
    """Raise FilterSpecError unless `fmt` is a non-empty strptime format we understand."""
    if not fmt:
        raise FilterSpecError("needs a format, e.g. date:%Y-%m-%d")
    for directive in re.findall(r"%(.?)", fmt):
        if directive not in _STRPTIME_DIRECTIVES:
            raise FilterSpecError(f"unknown date directive '%{directive}' in {fmt!r}")


def local_start(day: date, zone: ZoneInfo) -> datetime:
    """Return the first instant of `day` in `zone` (DST-correct, also where midnight is skipped).

    A wall time in a DST gap resolves (fold=0) to the offset before the gap, which names the
    instant the gap ends; the UTC round trip gives that instant its real local offset.
    """
    wall = datetime(day.year, day.month, day.day, tzinfo=zone)
    return wall.astimezone(UTC).astimezone(zone)


_NUMERIC_DIRECTIVES = {
    "Y": r"(?P<Y>[0-9]{4})",
    "m": r"(?P<m>[0-9]{1,2})",
    "d": r"(?P<d>[0-9]{1,2})",
}


def day_parser(fmt: str) -> Callable[[str], date]:
    """Return a parser of `fmt` dates raising ValueError, like strptime's but cheaper.

    strptime costs ~7 µs a call; a format made only of %Y, %m, %d and literal text (the
    usual HR "%Y-%m-%d" or "%d.%m.%Y") is read with one regular expression instead.
    """
    pieces = re.split(r"(%.)", fmt)
    directives = [p[1] for p in pieces if p.startswith("%") and len(p) == 2]
    if sorted(directives) != ["Y", "d", "m"]:
        return lambda text: datetime.strptime(text, fmt).date()
    pattern = re.compile(
        "".join(
            _NUMERIC_DIRECTIVES[p[1]] if p.startswith("%") and len(p) == 2 else re.escape(p)
            for p in pieces
        )
    )

    def parse(text: str) -> date:
        match = pattern.fullmatch(text)
        if match is None:
            raise ValueError(text)
        return date(int(match["Y"]), int(match["m"]), int(match["d"]))

    return parse


def _parse_day(item: Item, parse: Callable[[str], date], zone: ZoneInfo, fmt: str) -> date:
    if isinstance(item, datetime):
        return item.astimezone(zone).date()
    try:
        return parse(to_text(item).strip())
    except ValueError:
        raise FilterError(f"not a date in the format {fmt}", item) from None


def _date(fmt: str, zone: ZoneInfo) -> Filter:
    parse = day_parser(fmt)

    def start_of_day(item: Item) -> datetime:
        day = _parse_day(item, parse, zone, fmt)
        try:
            return local_start(day, zone)
        except OverflowError:  # year 1 east of UTC, year 9999 west of it
            raise FilterError("date out of range", item) from None

    return _each(start_of_day)


def _date_end(fmt: str, zone: ZoneInfo) -> Filter:
    """End of the local day, to the second: the last working day still opens doors."""

    parse = day_parser(fmt)

    def end_of_day(item: Item) -> datetime:
        day = _parse_day(item, parse, zone, fmt)
        if day == date.max:  # HR's "open-ended" 9999-12-31: there is no next day to step back from
            return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=zone)
        try:
            following = local_start(day + timedelta(days=1), zone)
        except OverflowError:
            raise FilterError("date out of range", item) from None
        return (following.astimezone(UTC) - timedelta(seconds=1)).astimezone(zone)

    return _each(end_of_day)


def _as_int(item: Item, what: str) -> int:
    if isinstance(item, int) and not isinstance(item, bool):
        return item
    text = to_text(item).strip()
    if not re.fullmatch(r"-?[0-9]{1,20}", text):
        raise FilterError(f"not {what}", item)
    return int(text)


def _filetime(zone: ZoneInfo) -> Filter:
    def convert(item: Item) -> datetime | None:
        ticks = _as_int(item, "a FILETIME number")
        if ticks in (0, _FILETIME_NEVER):
            return None  # AD's two spellings of "never expires"
        if ticks < 0:
            raise FilterError("not a FILETIME number", item)
        try:
            return (_FILETIME_EPOCH + timedelta(microseconds=ticks // 10)).astimezone(zone)
        except OverflowError:
            raise FilterError("FILETIME out of range", item) from None

    return _each(convert)


def _generalized_time(zone: ZoneInfo) -> Filter:
    def convert(item: Item) -> datetime:
        if isinstance(item, datetime):
            return item.astimezone(zone)
        match = _GENERALIZED_TIME.fullmatch(to_text(item).strip())
        if match is None:
            raise FilterError("not an LDAP GeneralizedTime", item)
        year, month, day, hour, minute, second, fraction, tz = match.groups()
        # The fraction belongs to the smallest unit given (RFC 4517).
        unit = 1 if second else 60 if minute else 3600
        extra = timedelta(seconds=float(f"0.{fraction}") * unit) if fraction else timedelta()
        try:
            wall = datetime(
                int(year),
                int(month),
                int(day),
                int(hour),
                int(minute or 0),
                int(second or 0),
                tzinfo=_offset(tz, zone),
            )
            return (wall + extra).astimezone(zone)
        except (ValueError, OverflowError):
            raise FilterError("not a valid LDAP GeneralizedTime", item) from None

    return _each(convert)


def _offset(tz: str | None, zone: ZoneInfo) -> timezone | ZoneInfo:
    if tz is None:
        return zone  # no zone given: read it as local time of the mapping
    if tz == "Z":
        return UTC
    sign = -1 if tz[0] == "-" else 1
    minutes = int(tz[1:3]) * 60 + int(tz[3:5] or 0)
    return timezone(sign * timedelta(minutes=minutes))


def _uac_disabled(item: Item) -> bool:
    return bool(_as_int(item, "a userAccountControl number") & _UAC_ACCOUNTDISABLE)


def _guid(item: Item) -> str:
    if isinstance(item, bytes):
        if len(item) != 16:
            raise FilterError(f"not a GUID ({len(item)} bytes, expected 16)", item)
        return str(uuid.UUID(bytes_le=item))
    try:  # some LDAP libraries already format objectGUID as text
        return str(uuid.UUID(to_text(item).strip().strip("{}")))
    except ValueError:
        raise FilterError("not a GUID", item) from None


def _card(item: Item, *, hexadecimal: bool) -> int:
    if isinstance(item, int) and not isinstance(item, bool):
        return item
    text = to_text(item).strip()
    if hexadecimal:
        text = _HEX_NOISE.sub("", text)
        text = text[2:] if text[:2] in ("0x", "0X") else text
        valid = _HEX_DIGITS.fullmatch(text) is not None
    else:
        valid = text.isascii() and text.isdigit()
    if not valid or len(text) > _MAX_CARD_DIGITS:
        kind = "hexadecimal" if hexadecimal else "decimal"
        raise FilterError(f"not a {kind} card number", item)
    return int(text, 16 if hexadecimal else 10)


def parse_map_arg(arg: str) -> tuple[dict[str, str], str | None]:
    """Parse "a=b,c=d,*=x" into ({casefolded a: b, …}, x or None); raise FilterSpecError."""
    table: dict[str, str] = {}
    fallback: str | None = None
    for pair in arg.split(","):
        source, sep, target = pair.partition("=")
        if not sep or not source.strip():
            raise FilterSpecError(f"map entry {pair.strip()!r} is not FROM=TO")
        if source.strip() == "*":
            fallback = target.strip()
        else:
            table[source.strip().casefold()] = target.strip()
    return table, fallback


def _map(arg: str) -> Filter:
    table, fallback = parse_map_arg(arg)
    expected = ", ".join(sorted(table))

    def translate(item: Item) -> str | None:
        target = table.get(to_text(item).strip().casefold(), fallback)
        if target is None:
            raise FilterError(f"unexpected value (expected one of: {expected})", item)
        return target or None

    return _each(translate)


_NO_ARG: dict[str, Filter] = {
    "lower": _text_filter(str.lower),
    "upper": _text_filter(str.upper),
    "title": _text_filter(str.title),
    "strip": _text_filter(str.strip),
    "first": _first,
    "uac_disabled": _each(_uac_disabled),
    "guid": _each(_guid),
    "hex_card": _each(lambda item: _card(item, hexadecimal=True)),
    "decimal_card": _each(lambda item: _card(item, hexadecimal=False)),
}
_ZONED: dict[str, Callable[[ZoneInfo], Filter]] = {
    "filetime": _filetime,
    "generalized_time": _generalized_time,
}
FILTER_NAMES = frozenset({*_NO_ARG, *_ZONED, "default", "date", "date_end", "map"})


def build_filter(name: str, arg: str | None, zone: ZoneInfo) -> Filter:
    """Return the filter `name` with its argument; raise FilterSpecError if it cannot exist."""
    if name not in FILTER_NAMES:
        raise FilterSpecError(f"unknown filter {name!r}")
    if name in _NO_ARG or name in _ZONED:
        if arg is not None:
            raise FilterSpecError(f"filter {name!r} takes no argument")
        return _NO_ARG[name] if name in _NO_ARG else _ZONED[name](zone)
    if name == "default":
        return _default(arg or "")
    if arg is None or not arg:
        raise FilterSpecError(f"filter {name!r} needs an argument ({name}:…)")
    if name == "map":
        return _map(arg)
    check_strptime_format(arg)
    return _date(arg, zone) if name == "date" else _date_end(arg, zone)
