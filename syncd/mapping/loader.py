"""Load a `mappings/*.toml` file into a `CompiledMapping`, reporting every problem at once.

`load_mapping(path)` reads, validates and compiles the file. The file is validated by the
pydantic models of `syncd.mapping.schema`, which compile its templates as they go, so any
problem (an unknown table, key or Person field, template syntax, an unknown filter or a
bad filter argument, an attribute missing from `options.attributes_allowed`, a bad regex
or time zone) is reported with its key path, all of them together in one `ConfigError`,
in the style of syncd.toml's errors (`syncd.config.problems`):

    mappings/hr-csv.toml: 1 problem(s):
      fields.valid_from: unknown filter 'dat'
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from syncd.config.problems import format_validation_error
from syncd.errors import ConfigError
from syncd.mapping.compiled import AccessRule, CompiledMapping, MappingOptions
from syncd.mapping.schema import AccessRuleTable, MappingFile, template_context


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
    try:
        mapping = MappingFile.model_validate(data, context=template_context(data))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc, MappingFile)) from None
    return compile_mapping(mapping, source)


def compile_mapping(mapping: MappingFile, source: str) -> CompiledMapping:
    """Return the CompiledMapping of a validated mapping file (whose templates are compiled)."""
    options = mapping.options
    allowed = options.attributes_allowed
    return CompiledMapping(
        source=source,
        fields=mapping.fields.templates(),
        attributes=dict(mapping.attributes),
        access=tuple(_rule(f"access[{i}]", rule) for i, rule in enumerate(mapping.access)),
        options=MappingOptions(
            time_zone=ZoneInfo(options.time_zone),
            list_separator=options.list_separator,
            disabled_when=options.disabled_when.text if options.disabled_when else None,
            attributes_allowed=None
            if allowed is None
            else frozenset(a.casefold() for a in allowed),
            required=options.required,
            pin_pattern=options.pin_pattern,
        ),
        disabled_when=options.disabled_when,
    )


def _rule(label: str, rule: AccessRuleTable) -> AccessRule:
    return AccessRule(label, rule.when, _test(rule), rule.groups, rule.member_of or ())


def normalize_dn(dn: str) -> str:
    """Return `dn` case-folded with the spaces around ',' and '=' removed, for comparison."""
    return re.sub(r"\s*([,=])\s*", r"\1", dn.strip()).casefold()


def _test(rule: AccessRuleTable) -> Callable[[tuple[str, ...]], bool] | None:
    """Return the predicate over the values of `when` (true when any value matches), or
    None for a rule without a test."""
    if rule.equals is not None:
        exact = frozenset(rule.equals)
        return lambda values: any(v in exact for v in values)
    if rule.member_of is not None:
        dns = frozenset(normalize_dn(dn) for dn in rule.member_of)
        return lambda values: any(normalize_dn(v) in dns for v in values)
    if rule.matches is not None:
        patterns = rule.matches
        return lambda values: any(p.search(v) for p in patterns for v in values)
    return None
