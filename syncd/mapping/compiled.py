"""A compiled mapping: raw record → Person, with errors that name field and attribute.

`CompiledMapping` satisfies `syncd.sources.base.RecordMapper`. It is built by
`syncd.mapping.loader.load_mapping`; everything it needs is compiled then, so `map` only
evaluates templates. Errors are `FieldError` (a `RecordError`) whose `field` reads
"valid_from (start_date)": the Person field and the source attribute. A value is quoted in
a message only when it does not come from a secret attribute (anything the `pin` field
reads): a bad PIN is "not a valid PIN", never the PIN.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import NamedTuple, TypeVar
from zoneinfo import ZoneInfo

from syncd.errors import RecordError, cut
from syncd.mapping.filters import FilterError, Item, Values, to_text
from syncd.mapping.readers import bare_text, by_cell, constant
from syncd.mapping.template import PlaceholderError, Template
from syncd.model import Person, RawRecord, Status

TEXT_FIELDS = ("key", "first_name", "last_name", "email", "employee_number", "pin")
DATE_FIELDS = ("valid_from", "valid_until")
LIST_FIELDS = ("cards", "groups")
PERSON_FIELDS = frozenset({*TEXT_FIELDS, *DATE_FIELDS, *LIST_FIELDS, "status"})
_TRUE = frozenset({"true", "yes", "1", "disabled"})
_FALSE = frozenset({"false", "no", "0", "active"})
T = TypeVar("T")


class Salvage(NamedTuple):
    """What a record `map` rejects still tells: its `key` (None: unreadable);
    `says_disabled`: True if the status or the disabled flag reads disabled, False if all
    configured read active, None if none reads disabled and one is unreadable; and the
    validity fields (valid_from, valid_until) that cannot be read."""

    key: str | None
    says_disabled: bool | None
    unreadable_validity: tuple[str, ...]


class FieldError(RecordError):
    """A record cannot be mapped: `person_field` and `attribute` (None if no single one)."""

    def __init__(self, person_field: str, attributes: tuple[str, ...], message: str) -> None:
        label = f"{person_field} ({', '.join(attributes)})" if attributes else person_field
        super().__init__(label, message)
        self.person_field = person_field
        self.attribute = attributes[0] if attributes else None


@dataclass(frozen=True, slots=True)
class MappingOptions:
    """The `[options]` table, resolved."""

    time_zone: ZoneInfo
    list_separator: str = ""
    disabled_when: str | None = None
    attributes_allowed: frozenset[str] | None = None
    required: tuple[str, ...] = ("key",)
    pin_pattern: str = r"[0-9]{4,16}"


@dataclass(frozen=True, slots=True)
class AccessRule:
    """`[[access]]`: when `test` holds for the values of `when`, the person joins `groups`."""

    label: str
    when: Template | None
    test: Callable[[tuple[str, ...]], bool] | None
    groups: tuple[Template, ...]
    member_of: tuple[str, ...] = ()  # the group DNs of a `member_of` rule, as written


class CompiledMapping:
    """A mapping file compiled once; `map` turns one raw record into a Person."""

    def __init__(
        self,
        *,
        source: str,
        fields: dict[str, Template],
        attributes: dict[str, Template],
        access: tuple[AccessRule, ...],
        options: MappingOptions,
        disabled_when: Template | None,
    ) -> None:
        self.source = source
        self.options = options
        self._fields = fields
        self._extra = attributes
        # Rules that always apply with constant groups are resolved once, not per record.
        static = [rule for rule in access if _is_static(rule)]
        self._static_groups = frozenset(
            str(value).strip() for rule in static for g in rule.groups for value in g.fixed or ()
        )
        self._dynamic_rules = tuple(rule for rule in access if not _is_static(rule))
        self._disabled_when = disabled_when
        self._pin = re.compile(options.pin_pattern)
        pin = fields.get("pin")
        self._secret = frozenset(a.casefold() for a in pin.attributes) if pin else frozenset()
        templates = [*fields.values(), *attributes.values(), *_access_templates(access)]
        if disabled_when is not None:
            templates.append(disabled_when)
        self.attributes: frozenset[str] = frozenset(a for t in templates for a in t.attributes)
        # What an LDAP source with nested_groups expands (syncd.sources.ldap).
        self.member_of_dns: tuple[str, ...] = tuple(
            dict.fromkeys(dn for rule in access for dn in rule.member_of)
        )
        self._compile_readers()

    def _compile_readers(self) -> None:
        """Build the per-field readers `map` calls (syncd.mapping.readers), once."""
        self._text_readers = tuple(self._text_reader(name) for name in TEXT_FIELDS)
        # (field, its index among TEXT_FIELDS or -1): where `map` finds its text, if any
        self._required = tuple(
            (name, TEXT_FIELDS.index(name) if name in TEXT_FIELDS else -1)
            for name in self.options.required
        )
        self._read_status: Callable[[RawRecord], Status] = self._status
        if self._disabled_when is None:  # else the status also depends on other attributes
            self._read_status = self._remembered("status", self._status)
        self._read_from = self._remembered("valid_from", partial(self._datetime, "valid_from"))
        self._read_until = self._remembered("valid_until", partial(self._datetime, "valid_until"))
        self._read_cards = self._remembered("cards", self._cards)
        self._read_groups: Callable[[RawRecord], frozenset[str]] = self._groups
        if not self._dynamic_rules:  # else rules read other attributes too
            if "groups" not in self._fields:
                self._read_groups = constant(frozenset(self._static_groups))
            else:
                self._read_groups = self._remembered("groups", self._groups)

    def _text_reader(self, name: str) -> Callable[[RawRecord], str]:
        template = self._fields.get(name)
        if template is None:
            return constant("")
        general = partial(self._as_text, name, template)
        attribute = _bare_attribute(template)
        if attribute:
            return bare_text(attribute, general)
        return general if name == "pin" else self._remembered(name, general)

    def _remembered(self, name: str, compute: Callable[[RawRecord], T]) -> Callable[[RawRecord], T]:
        """Return `compute` remembered per cell when field `name` reads one plain attribute.

        That is when its template is exactly one placeholder, whose attribute is not one
        the PIN reads (a memo outlives the read; secrets must not).
        """
        template = self._fields.get(name)
        single = template.single if template is not None else None
        if single is None or single.attribute.casefold() in self._secret:
            return compute
        return by_cell(single.attribute, compute)

    @property
    def key_attributes(self) -> tuple[str, ...]:
        """The source attributes the key is made of (for locating duplicate keys)."""
        return self._fields["key"].attributes

    def key_of(self, raw: RawRecord) -> str | None:
        """Return the key of `raw`, or None if it cannot be read (never raises)."""
        try:
            return self._text("key", raw) or None
        except RecordError:
            return None

    def salvage(self, raw: RawRecord) -> Salvage:
        """Return what `raw` still tells when `map` rejects it (never raises): its key,
        whether its status or disabled flag says disabled, and which validity fields
        cannot be read. The sources decide from this what happens to the person."""
        answers: list[bool | None] = []
        if "status" in self._fields:
            answers.append(_answer(self._status_field, raw))
        if self._disabled_when is not None:
            answers.append(_answer(self._disabled_flag, raw))
        says = True if True in answers else None if None in answers else False
        readers = (("valid_from", self._read_from), ("valid_until", self._read_until))
        unreadable = tuple(name for name, read in readers if _fails(read, raw))
        return Salvage(self.key_of(raw), says, unreadable)

    def map(self, raw: RawRecord) -> Person:
        """Return the Person of `raw`; raise FieldError naming field and attribute if it cannot.

        Fields are evaluated in a fixed order (TEXT_FIELDS, required, PIN, status, dates,
        cards, groups, attributes), so a record with several problems always reports the
        same one.
        """
        key, first, last, email, number, pin = self._text_readers
        text = (key(raw), first(raw), last(raw), email(raw), number(raw), pin(raw))
        for name, index in self._required:
            if (index < 0 or not text[index]) and not self._values(name, raw):
                raise FieldError(name, self._attrs(name), "missing")
        if text[5] and not self._pin.fullmatch(text[5]):
            raise FieldError("pin", self._attrs("pin"), "not a valid PIN")
        return Person(
            key=text[0],
            first_name=text[1],
            last_name=text[2],
            email=text[3],
            employee_number=text[4],
            pin=text[5],
            status=self._read_status(raw),
            valid_from=self._read_from(raw),
            valid_until=self._read_until(raw),
            cards=self._read_cards(raw),
            groups=self._read_groups(raw),
            attributes=self._extra_attributes(raw),
        )

    # -- evaluation ---------------------------------------------------------------------

    def _attrs(self, name: str) -> tuple[str, ...]:
        template = self._fields.get(name)
        return template.attributes if template is not None else ()

    def _evaluate(self, label: str, template: Template, raw: RawRecord) -> Values:
        try:
            return template.values(raw)
        except PlaceholderError as exc:
            raise FieldError(label, (exc.attribute,), self._explain(exc, label)) from None

    def _explain(self, exc: PlaceholderError, label: str) -> str:
        secret = label == "pin" or exc.attribute.casefold() in self._secret
        if exc.value is None or secret:
            return exc.reason
        shown = exc.value.hex(" ") if isinstance(exc.value, bytes) else str(exc.value)
        return f"{exc.reason}: {cut(shown, 60)!r}"

    def _values(self, name: str, raw: RawRecord) -> Values:
        template = self._fields.get(name)
        return () if template is None else self._evaluate(name, template, raw)

    def _one(self, label: str, template: Template, raw: RawRecord) -> Item | None:
        try:
            values = (template.single or template).values(raw)
        except PlaceholderError as exc:
            raise FieldError(label, (exc.attribute,), self._explain(exc, label)) from None
        if len(values) == 1:
            return values[0]
        if values:
            message = f"has {len(values)} values where one is expected (use |first)"
            raise FieldError(label, template.attributes, message)
        return None

    def _text(self, name: str, raw: RawRecord) -> str:
        template = self._fields.get(name)
        return "" if template is None else self._as_text(name, template, raw)

    def _as_text(self, label: str, template: Template, raw: RawRecord) -> str:
        single = template.single
        if single is not None and not single.filters:
            value = raw.get(single.attribute)
            if type(value) is str:  # a plain cell: the hot path of a 100 000-row CSV
                return value.strip()
        item = self._one(label, template, raw)
        if item is None:
            return ""
        return item.strip() if type(item) is str else self._to_text(label, template, item).strip()

    def _to_text(self, label: str, template: Template, item: Item) -> str:
        try:
            return to_text(item)
        except FilterError as exc:
            raise FieldError(label, template.attributes, exc.reason) from None

    def _status(self, raw: RawRecord) -> Status:
        disabled = "status" in self._fields and self._status_field(raw)
        if self._disabled_when is not None:
            disabled = disabled or self._disabled_flag(raw)
        return Status.DISABLED if disabled else Status.ACTIVE

    def _status_field(self, raw: RawRecord) -> bool:
        """Return True if the `status` field reads disabled; FieldError if neither value."""
        value = self._text("status", raw).casefold()
        if value not in ("active", "disabled"):
            shown = f": {cut(value, 40)!r}" if value else ""
            message = f"not a status{shown} (expected active or disabled; use |map:…)"
            raise FieldError("status", self._attrs("status"), message)
        return value == "disabled"

    def _disabled_flag(self, raw: RawRecord) -> bool:
        """Return what `options.disabled_when` reads (False when it is not configured)."""
        if self._disabled_when is None:
            return False
        return self._truth("options.disabled_when", self._disabled_when, raw)

    def _truth(self, label: str, template: Template, raw: RawRecord) -> bool:
        """Read true/false (yes/no, 1/0); missing is false; anything else is an error."""
        item = self._one(label, template, raw)
        if item is None or isinstance(item, bool):
            return bool(item)
        text = self._to_text(label, template, item).strip().casefold()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise FieldError(label, template.attributes, f"not true or false: {cut(text, 40)!r}")

    def _datetime(self, name: str, raw: RawRecord) -> datetime | None:
        template = self._fields.get(name)
        item = None if template is None else self._one(name, template, raw)
        if item is None or template is None:
            return None
        if isinstance(item, datetime):
            return item if item.tzinfo else item.replace(tzinfo=self.options.time_zone)
        try:
            parsed = datetime.fromisoformat(self._to_text(name, template, item).strip())
        except ValueError:
            raise FieldError(name, template.attributes, "not a date (use |date:FORMAT)") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=self.options.time_zone)

    def _cards(self, raw: RawRecord) -> tuple[int, ...]:
        values = self._values("cards", raw)
        if len(values) == 1 and type(values[0]) is int and values[0] >= 0:
            return (values[0],)  # one card, as |decimal_card or |hex_card gives it: done
        cards: list[int] = []
        for item in values:
            if type(item) is int and item >= 0:
                cards.append(item)
            elif isinstance(item, str) and item.strip().isascii() and item.strip().isdigit():
                cards.append(int(item.strip()))
            else:
                message = "not a card number (use |decimal_card or |hex_card)"
                raise FieldError("cards", self._attrs("cards"), message)
        return tuple(dict.fromkeys(cards))

    def _groups(self, raw: RawRecord) -> frozenset[str]:
        groups = set(self._static_groups)
        template = self._fields.get("groups")
        if template is not None:
            groups.update(self._names("groups", template, raw))
        for rule in self._dynamic_rules:
            if self._applies(rule, raw):
                for template in rule.groups:
                    groups.update(self._names(f"{rule.label}.groups", template, raw))
        return frozenset(groups)

    def _names(self, label: str, template: Template, raw: RawRecord) -> list[str]:
        names: list[str] = []
        for item in self._evaluate(label, template, raw):
            name = item if type(item) is str else self._to_text(label, template, item)
            if name.strip():
                names.append(name.strip())
        return names

    def _applies(self, rule: AccessRule, raw: RawRecord) -> bool:
        if rule.when is None:
            return True
        label = f"{rule.label}.when"
        if rule.test is None:
            return self._truth(label, rule.when, raw)
        values = self._names(label, rule.when, raw)
        return rule.test(tuple(values))

    def _extra_attributes(self, raw: RawRecord) -> tuple[tuple[str, str], ...]:
        if not self._extra:
            return ()
        pairs = (
            (name, self._as_text(f"attributes.{name}", t, raw)) for name, t in self._extra.items()
        )
        return tuple(sorted((name, value) for name, value in pairs if value))


def _answer(read: Callable[[RawRecord], bool], raw: RawRecord) -> bool | None:
    """Return `read(raw)`, or None if the record cannot be read."""
    try:
        return read(raw)
    except RecordError:
        return None


def _fails(read: Callable[[RawRecord], object], raw: RawRecord) -> bool:
    """Return True if `read` cannot read the record."""
    try:
        read(raw)
    except RecordError:
        return True
    return False


def _is_static(rule: AccessRule) -> bool:
    """True for a rule without a condition whose groups are constants."""
    return rule.when is None and all(group.is_constant for group in rule.groups)


def _bare_attribute(template: Template) -> str:
    """Return the attribute of a template that is exactly "{attribute}", else ""."""
    single = template.single
    return single.attribute if single is not None and not single.filters else ""


def _access_templates(access: tuple[AccessRule, ...]) -> list[Template]:
    templates = [rule.when for rule in access if rule.when is not None]
    return templates + [group for rule in access for group in rule.groups]
