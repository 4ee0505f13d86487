"""The schema of a mapping file (`mappings/*.toml`): one pydantic model per table, unknown
keys forbidden, every template compiled while the file is validated.

A template's problem (bad braces, an unknown filter, an attribute outside
`attributes_allowed`) is therefore a validation error at its key like any other, and
`syncd.config.problems` reports all of a file's problems at once, as for syncd.toml.

Templates depend on three options (the time zone of the date filters, the list separator
of multi-valued fields, `attributes_allowed`), so validating is two steps:
`template_context(data)` reads those options first, each on its own (a bad one keeps its
default, and is reported by the second step), then `MappingFile.model_validate(data,
context=...)` validates the whole file, compiling every template with that context.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Self, TypeVar
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from syncd.config.checks import TimeZoneName
from syncd.config.secretref import Strict
from syncd.mapping.compiled import PERSON_FIELDS
from syncd.mapping.template import Template, parse_template

CONDITIONS = ("equals", "matches", "member_of")
"""The keys of an `[[access]]` rule that test the values of its `when` (at most one)."""
MEMBER_OF_WHEN = "{memberOf}"
"""What a `member_of` rule tests when it names no `when`."""
T = TypeVar("T")
_UTC = ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class TemplateContext:
    """What compiling a template needs from `[options]`; the defaults are the options'."""

    zone: ZoneInfo = _UTC
    separator: str = ""
    allowed: frozenset[str] | None = None  # case-folded; None: any attribute


def compile_template(value: object, info: ValidationInfo, *, multi: bool = False) -> Template:
    """Return `value` compiled with the TemplateContext of `info`; raise ValueError (or
    TemplateSyntaxError, a ValueError) saying why it cannot be. `multi`: the template feeds
    a multi-valued field, so a single text value splits on the list separator."""
    if not isinstance(value, str):
        raise ValueError(f"must be a template string, not {type(value).__name__}")
    context = info.context if isinstance(info.context, TemplateContext) else TemplateContext()
    template = parse_template(value, context.zone, split=context.separator if multi else "")
    if context.allowed is not None:
        denied = [a for a in template.attributes if a.casefold() not in context.allowed]
        if denied:
            names = ", ".join(repr(a) for a in denied)
            raise ValueError(f"attribute {names} is not in attributes_allowed")
    return template


def _multi(value: object, info: ValidationInfo) -> Template:
    return compile_template(value, info, multi=True)


def _reads_attribute(template: Template) -> Template:
    if template.is_constant:
        raise ValueError("must read a source attribute (the stable key of a person)")
    return template


def _person_field(name: str) -> str:
    if name not in PERSON_FIELDS:
        raise ValueError(f"{name!r} is not a Person field ({', '.join(sorted(PERSON_FIELDS))})")
    return name


def _regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return pattern


def _strings(value: object) -> tuple[str, ...]:
    """Return a string or a non-empty list of strings as a tuple; raise ValueError."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError("must be a string or a non-empty list of strings")


def _patterns(value: object) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(_regex(pattern)) for pattern in _strings(value))


def _not_empty(groups: tuple[Template, ...]) -> tuple[Template, ...]:
    if not groups:
        raise ValueError("required: a non-empty list of group names")
    return groups


TemplateText = Annotated[Template, PlainValidator(compile_template)]
"""A template of a single-valued field."""
ListTemplate = Annotated[Template, PlainValidator(_multi)]
"""A template of a multi-valued field (cards, groups): a text value splits."""
KeyTemplate = Annotated[TemplateText, AfterValidator(_reads_attribute)]
PersonField = Annotated[str, AfterValidator(_person_field)]
Regex = Annotated[str, AfterValidator(_regex)]
Strings = Annotated[tuple[str, ...], PlainValidator(_strings)]
Patterns = Annotated[tuple[re.Pattern[str], ...], PlainValidator(_patterns)]


class OptionsTable(Strict):
    """`[options]`."""

    time_zone: TimeZoneName = "UTC"
    disabled_when: TemplateText | None = None
    list_separator: str = ""
    attributes_allowed: tuple[str, ...] | None = None
    required: tuple[PersonField, ...] = ("key",)
    pin_pattern: Regex = r"[0-9]{4,16}"


class FieldsTable(Strict):
    """`[fields]`: a template per Person field; `key` is required."""

    KEY_HINTS: ClassVar[dict[str, str]] = {"attributes": "use the [attributes] table"}

    key: KeyTemplate
    first_name: TemplateText | None = None
    last_name: TemplateText | None = None
    email: TemplateText | None = None
    employee_number: TemplateText | None = None
    pin: TemplateText | None = None
    status: TemplateText | None = None
    valid_from: TemplateText | None = None
    valid_until: TemplateText | None = None
    cards: ListTemplate | None = None
    groups: ListTemplate | None = None

    def templates(self) -> dict[str, Template]:
        """Return the template of every field the file sets, by field name."""
        chosen = ((name, getattr(self, name)) for name in type(self).model_fields)
        return {name: template for name, template in chosen if template is not None}


class AccessRuleTable(Strict):
    """`[[access]]`: people join `groups` when the test (at most one of `equals`, `matches`,
    `member_of`) holds for a value of `when`; without a test, when `when` reads true;
    without either, always. `when` is checked last: how it compiles depends on the test."""

    equals: Strings | None = None
    matches: Patterns | None = None
    member_of: Strings | None = None
    groups: Annotated[tuple[ListTemplate, ...], AfterValidator(_not_empty)]
    when: Template | None = None

    @field_validator("when", mode="plain")
    @classmethod
    def _compile_when(cls, value: object, info: ValidationInfo) -> Template:
        # With a test, `when` gives values to test (a text value splits); else one truth.
        tested = any(info.data.get(key) is not None for key in CONDITIONS)
        return compile_template(value, info, multi=tested)

    @model_validator(mode="after")
    def _one_test(self, info: ValidationInfo) -> Self:
        given = [key for key in CONDITIONS if getattr(self, key) is not None]
        if len(given) > 1:
            raise ValueError("give at most one of equals, matches, member_of")
        if self.when is not None or not given:
            return self
        if given != ["member_of"]:
            raise ValueError(f"`when` is required with {given[0]}")
        return self.model_copy(update={"when": compile_template(MEMBER_OF_WHEN, info, multi=True)})


class MappingFile(Strict):
    """A whole mapping file. `options` comes first: `fields` is checked against it."""

    description: str = ""
    options: OptionsTable = Field(default_factory=OptionsTable)
    fields: FieldsTable
    attributes: dict[str, TemplateText] = Field(default_factory=dict)
    access: tuple[AccessRuleTable, ...] = ()

    @field_validator("fields")
    @classmethod
    def _required_have_templates(cls, fields: FieldsTable, info: ValidationInfo) -> FieldsTable:
        options = info.data.get("options")
        required = options.required if isinstance(options, OptionsTable) else ()
        missing = [name for name in required if getattr(fields, name) is None]
        if missing:
            names = ", ".join(repr(name) for name in missing)
            raise ValueError(f"{names} has no template (options.required names it)")
        return fields


def template_context(data: Mapping[str, Any]) -> TemplateContext:
    """Return the TemplateContext the `[options]` of `data` (a parsed mapping file) set.

    Each option is read on its own: one that is missing or bad keeps its default (the
    validation of the whole file reports it), so the other templates are still checked.
    """
    options = data.get("options")
    if not isinstance(options, dict):
        return TemplateContext()
    zone = _option(options, "time_zone", TimeZoneName, "UTC")
    separator = _option(options, "list_separator", str, "")
    allowed = _option(options, "attributes_allowed", tuple[str, ...] | None, None)
    return TemplateContext(
        zone=ZoneInfo(zone),
        separator=separator,
        allowed=None if allowed is None else frozenset(a.casefold() for a in allowed),
    )


def _option(options: dict[str, Any], key: str, kind: Any, default: T) -> T:
    """Return `options[key]` validated as `kind`, or `default` if absent or invalid."""
    try:
        value: T = TypeAdapter(kind).validate_python(options.get(key, default))
    except ValidationError:
        return default
    return value
