"""Turn a pydantic ValidationError into the lines syncd prints: a dotted key path as the
file spells it, and a message (`targets.lobby.api_key: Field required`).

Shared by syncd.toml (`syncd.config.load_config`) and the mapping files
(`syncd.mapping.loader`), so both read alike. A tagged union's tag, which pydantic puts in
an error's location, is left out of the path: only the step that selects a variant is a
tag, so a target *named* `clue` keeps its name (`targets.clue.api_key`).
"""

from __future__ import annotations

import difflib
import types
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError


def format_validation_error(path: Path | str, exc: ValidationError, root: type[BaseModel]) -> str:
    """Return a header naming `path` and the count, then one indented "key: message" line
    per problem of `exc` (raised validating `root`)."""
    lines = [f"{path}: {exc.error_count()} problem(s):"]
    lines += [f"  {where}: {message}" for where, message in validation_problems(exc, root)]
    return "\n".join(lines)


def validation_problems(exc: ValidationError, root: type[BaseModel]) -> list[tuple[str, str]]:
    """Return (key path, message) for every problem of `exc`, raised validating `root`.

    A key the schema does not know reads "unknown key", with the closest known key of
    its table as a hint (`did you mean `max_deletes`?`), not pydantic's wording; a
    problem a validator raised reads as its ValueError, without pydantic's "Value error, ".
    """
    problems = []
    for error in exc.errors():
        parts, table = _walk(root, error["loc"][:-1])
        last, _ = _walk(table, error["loc"][-1:]) if error["loc"] else ([], None)
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key" + _hint(table, str(error["loc"][-1]))
        elif error["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        elif error["type"] in _EXPECTED:
            message = f"must be {_EXPECTED[error['type']]}, not {_toml_kind(error['input'])}"
        problems.append((_dotted(parts + last) or "(top)", message))
    return problems


_EXPECTED = {
    "dict_type": "a table",
    "model_type": "a table",
    "list_type": "an array",
    "tuple_type": "an array",
    "string_type": "a string",
}
"""Pydantic's "Input should be a valid tuple" in TOML's words ("must be an array")."""


def _toml_kind(value: object) -> str:
    """Return what TOML calls the type of `value` (a parsed TOML value)."""
    kinds = {dict: "a table", list: "an array", str: "a string", bool: "a boolean"}
    kinds |= {int: "an integer", float: "a float"}
    return kinds.get(type(value), f"a {type(value).__name__}")


def _dotted(parts: list[int | str]) -> str:
    """Return `a.b[0].c` for ["a", "b", 0, "c"]."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def _walk(table: Any, loc: tuple[int | str, ...]) -> tuple[list[int | str], Any]:
    """Follow `loc` from the type `table`; return the parts that are keys or indexes of
    the file (tags dropped) and the type reached (None once it is lost)."""
    parts: list[int | str] = []
    for part in loc:
        variant = _variant(table, part)
        if variant is not None:  # pydantic's tag for a union's variant, not a key
            table = variant
            continue
        parts.append(part)
        table = _inner(table, part)
    return parts, table


def _hint(table: Any, key: str) -> str:
    """Return a hint for the unknown `key` of the model `table`: its own hint for that key
    if it has one (a `KEY_HINTS` class attribute: ` (use the [attributes] table)`), else
    ` (did you mean `KEY`?)` for the closest known key; "" when none is close (or `table`
    is not a model)."""
    if not (isinstance(table, type) and issubclass(table, BaseModel)):
        return ""
    own = getattr(table, "KEY_HINTS", {}).get(key)
    if own:
        return f" ({own})"
    close = difflib.get_close_matches(key, list(table.model_fields), n=1)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _inner(table: Any, part: int | str) -> Any:
    """Return the type that `part` of a location leads to in `table` (a model's field, a
    dict's value, a list's item); None if it is lost."""
    table = _required(table)
    if isinstance(table, type) and issubclass(table, BaseModel):
        field = table.model_fields.get(str(part))
        return _required(field.annotation) if field is not None else None
    if get_origin(table) is dict:
        return _required(get_args(table)[1])
    if get_origin(table) in (list, tuple) and isinstance(part, int):
        return _required(get_args(table)[0])
    return None


def _variant(table: Any, part: int | str) -> type[BaseModel] | None:
    """Return the variant of the tagged union `table` whose `type` tag is `part`, or None
    when `table` is no such union (then `part` is a key)."""
    for variant in get_args(_required(table)):
        if not (isinstance(variant, type) and issubclass(variant, BaseModel)):
            continue
        tag = variant.model_fields.get("type")
        if tag is not None and get_args(tag.annotation) == (part,):
            return variant
    return None


def _required(annotation: Any) -> Any:
    """Return `annotation` without its `| None` and `Annotated` wrappers."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (Union, types.UnionType) and len(args) == 1:
        return _required(args[0])
    return annotation
