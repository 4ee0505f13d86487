"""The mapping language: `mappings/*.toml` → a compiled function from raw record to Person.

`load_mapping(path)` (or `loads_mapping(text)`) compiles a mapping once and returns a
`CompiledMapping` (alias `Mapping`), which satisfies `syncd.sources.base.RecordMapper`:

- `.attributes`: every source attribute the mapping reads (an LDAP search asks for them,
  the CSV source checks its header against them);
- `.map(raw)`: the Person of one raw record, or `FieldError` (a `RecordError`) whose
  `field` names the Person field and the source attribute: "valid_from (start_date)";
- `.options`: the resolved `[options]` (time zone, list separator, …);
- `.key_of(raw)` / `.key_attributes`: the key alone, so that a source can hold the key
  of a record it could not map;
- `.salvage(raw)`: what a record `map` rejects still tells (key, whether it says disabled,
  which validity fields are unreadable), for `syncd.sources.salvage` to decide on.

Declarative, no eval. A mapping file has four tables:

    [fields]       Person fields as templates over source attributes
    [attributes]   extra target-specific attributes → Person.attributes
    [[access]]     rules that put people into groups
    [options]      time_zone, disabled_when, list_separator, attributes_allowed, required,
                   pin_pattern

The file is validated by the pydantic models of syncd/mapping/schema.py, which compile
every template as they go; a file's problems are reported all at once, one "key: message"
line each, as for syncd.toml (syncd/config/problems.py).

Templates: `"{givenName} {sn}"`, `"{start_date|date:%Y-%m-%d}"`, `"{mail|lower|default:}"`.
The syntax and every filter are described in syncd/mapping/template.py and filters.py, and
in the README's "Mapping files" section.
"""

from syncd.mapping.compiled import CompiledMapping, FieldError, MappingOptions, Salvage
from syncd.mapping.loader import load_mapping, loads_mapping

Mapping = CompiledMapping

__all__ = [
    "CompiledMapping",
    "FieldError",
    "Mapping",
    "MappingOptions",
    "Salvage",
    "load_mapping",
    "loads_mapping",
]
