"""Load a `mappings/*.toml` file into a `CompiledMapping`, reporting every problem at once.

`load_mapping(path)` reads, validates and compiles the file. Any problem (bad TOML, an
unknown table or key, an unknown Person field, template syntax, an unknown filter or a bad
filter argument, an attribute missing from `options.attributes_allowed`, a bad regex or
time zone) is collected with its key, and all of them are raised together as one
`ConfigError`, one line each: `mappings/hr-csv.toml: fields.valid_from: unknown filter 'dat'`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from syncd.errors import ConfigError
from syncd.mapping.compiled import (
    LIST_FIELDS,
    PERSON_FIELDS,
    AccessRule,
    CompiledMapping,
    MappingOptions,
)
from syncd.mapping.template import Template, TemplateSyntaxError, parse_template

_TOP_KEYS = frozenset({"description", "fields", "attributes", "access", "options"})
_OPTION_KEYS = frozenset(
    {
        "time_zone",
        "disabled_when",
        "list_separator",
        "attributes_allowed",
        "required",
        "pin_pattern",
    }
)
_RULE_KEYS = frozenset({"when", "equals", "matches", "member_of", "groups"})
_UTC = ZoneInfo("UTC")


class _Problems:
    """Collects "key: message" lines; `raise_if_any` turns them into one ConfigError."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.lines.append(f"{self.source}: {key}: {message}")

    def raise_if_any(self) -> None:
        if self.lines:
            raise ConfigError("\n".join(self.lines))


def load_mapping(path: Path) -> CompiledMapping:
    """Given a mapping file, return it compiled; raise ConfigError listing every problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read mapping: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return loads_mapping(text, str(path))


def loads_mapping(text: str, source: str = "<mapping>") -> CompiledMapping:
    """Given the TOML text of a mapping (named `source` in errors), return it compiled."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    problems = _Problems(source)
    mapping = _Compiler(data, problems).compile(source)
    problems.raise_if_any()
    assert mapping is not None  # no problems means everything compiled
    return mapping


class _Compiler:
    """Compiles the tables of one mapping file, recording problems instead of stopping."""

    def __init__(self, data: dict[str, Any], problems: _Problems) -> None:
        self.data = data
        self.problems = problems
        self.options = self._options(_table(data, "options", problems))
        self.zone = self.options.time_zone

    def compile(self, source: str) -> CompiledMapping | None:
        for key in sorted(set(self.data) - _TOP_KEYS):
            self.problems.add(key, "unknown table or key")
        declared = _table(self.data, "fields", self.problems)
        fields = self._fields(declared)
        extra = {
            str(name): template
            for name, text in _table(self.data, "attributes", self.problems).items()
            if (template := self._template(f"attributes.{name}", text)) is not None
        }
        access = self._access(self.data.get("access", []))
        for name in self.options.required:
            if name in PERSON_FIELDS and name not in declared:
                self.problems.add("options.required", f"{name!r} has no template in [fields]")
        disabled_when = None
        if self.options.disabled_when is not None:
            disabled_when = self._template("options.disabled_when", self.options.disabled_when)
        if self.problems.lines:
            return None
        return CompiledMapping(
            source=source,
            fields=fields,
            attributes=extra,
            access=access,
            options=self.options,
            disabled_when=disabled_when,
        )

    def _template(self, key: str, text: object, *, multi: bool = False) -> Template | None:
        """Compile the template at `key`; `multi`: it feeds a multi-valued field (split)."""
        if not isinstance(text, str):
            self.problems.add(key, f"must be a template string, not {type(text).__name__}")
            return None
        split = self.options.list_separator if multi else ""
        try:
            template = parse_template(text, self.zone, split=split)
        except TemplateSyntaxError as exc:
            self.problems.add(key, str(exc))
            return None
        allowed = self.options.attributes_allowed
        for attribute in template.attributes:
            if allowed is not None and attribute.casefold() not in allowed:
                self.problems.add(key, f"attribute {attribute!r} is not in attributes_allowed")
        return template

    def _fields(self, table: dict[str, Any]) -> dict[str, Template]:
        fields: dict[str, Template] = {}
        for name, text in table.items():
            if name not in PERSON_FIELDS:
                hint = " (use the [attributes] table)" if name == "attributes" else ""
                self.problems.add(f"fields.{name}", f"unknown Person field{hint}")
            elif template := self._template(f"fields.{name}", text, multi=name in LIST_FIELDS):
                fields[name] = template
        if "key" not in table:
            self.problems.add("fields.key", "required (the stable key of a person)")
        elif "key" in fields and fields["key"].is_constant:
            self.problems.add("fields.key", "must read a source attribute")
        return fields

    def _options(self, table: dict[str, Any]) -> MappingOptions:
        for key in sorted(set(table) - _OPTION_KEYS):
            self.problems.add(f"options.{key}", "unknown option")
        zone = _zone(self._get(table, "time_zone", str, "UTC"), self.problems)
        allowed = self._get(table, "attributes_allowed", list, None)
        required = self._get(table, "required", list, ["key"])
        for name in required:
            if not isinstance(name, str) or name not in PERSON_FIELDS:
                self.problems.add("options.required", f"{name!r} is not a Person field")
        pattern = self._get(table, "pin_pattern", str, r"[0-9]{4,16}")
        _check_regex("options.pin_pattern", pattern, self.problems)
        return MappingOptions(
            time_zone=zone,
            list_separator=self._get(table, "list_separator", str, ""),
            disabled_when=self._get(table, "disabled_when", str, None),
            attributes_allowed=None
            if allowed is None
            else frozenset(str(a).casefold() for a in allowed),
            required=tuple(str(name) for name in required),
            pin_pattern=pattern,
        )

    def _get(self, table: dict[str, Any], key: str, kind: type, default: Any) -> Any:
        value = table.get(key, default)
        if value is not default and not isinstance(value, kind):
            self.problems.add(f"options.{key}", f"must be a {kind.__name__}")
            return default
        return value

    def _access(self, rules: object) -> tuple[AccessRule, ...]:
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            self.problems.add("access", "must be an array of tables ([[access]])")
            return ()
        compiled = (self._rule(f"access[{i}]", rule) for i, rule in enumerate(rules))
        return tuple(rule for rule in compiled if rule is not None)

    def _rule(self, label: str, rule: dict[str, Any]) -> AccessRule | None:
        for key in sorted(set(rule) - _RULE_KEYS):
            self.problems.add(f"{label}.{key}", "unknown key")
        groups = rule.get("groups")
        if not isinstance(groups, list) or not groups:
            self.problems.add(f"{label}.groups", "required: a non-empty list of group names")
            groups = []
        templates = [self._template(f"{label}.groups", g, multi=True) for g in groups]
        conditions = [k for k in ("equals", "matches", "member_of") if k in rule]
        if len(conditions) > 1:
            self.problems.add(label, "give at most one of equals, matches, member_of")
        when_text = rule.get("when", "{memberOf}" if conditions == ["member_of"] else None)
        if conditions and when_text is None:
            self.problems.add(f"{label}.when", f"required with {conditions[0]}")
        when = None
        if when_text is not None:
            when = self._template(f"{label}.when", when_text, multi=bool(conditions))
        test = _test(label, rule, conditions[0], self.problems) if len(conditions) == 1 else None
        member_of = tuple(_strings(rule["member_of"]) or ()) if conditions == ["member_of"] else ()
        kept = tuple(t for t in templates if t is not None)
        return AccessRule(label, when, test, kept, member_of)


def _table(data: dict[str, Any], key: str, problems: _Problems) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        problems.add(key, "must be a table")
        return {}
    return value


def _zone(name: str, problems: _Problems) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        problems.add("options.time_zone", f"unknown time zone {name!r} (IANA name expected)")
        return _UTC


def _check_regex(key: str, pattern: str, problems: _Problems) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error as exc:
        problems.add(key, f"not a valid regular expression: {exc}")
        return None


def _strings(value: object) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return None


def normalize_dn(dn: str) -> str:
    """Return `dn` case-folded with the spaces around ',' and '=' removed, for comparison."""
    return re.sub(r"\s*([,=])\s*", r"\1", dn.strip()).casefold()


def _test(
    label: str, rule: dict[str, Any], condition: str, problems: _Problems
) -> Callable[[tuple[str, ...]], bool] | None:
    """Return the predicate over the values of `when` (true when any value matches)."""
    wanted = _strings(rule[condition])
    if wanted is None:
        problems.add(f"{label}.{condition}", "must be a string or a non-empty list of strings")
        return None
    if condition == "equals":
        exact = frozenset(wanted)
        return lambda values: any(v in exact for v in values)
    if condition == "member_of":
        dns = frozenset(normalize_dn(dn) for dn in wanted)
        return lambda values: any(normalize_dn(v) in dns for v in values)
    compiled = [_check_regex(f"{label}.matches", p, problems) for p in wanted]
    patterns = [p for p in compiled if p is not None]
    return lambda values: any(p.search(v) for p in patterns for v in values)
