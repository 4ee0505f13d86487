"""README.md documents every key of every source and target, and every command.

The key reference ("Every key of sources and targets") has one table per kind, under a
heading naming its `type`; its first column must hold exactly the fields of the pydantic
model (`syncd/config/schema.py`), so a key added to a model without a line in the README fails
here, and so does a line for a key that no longer exists. The command table must name
every command and subcommand the CLI registers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from syncd.cli import command_tree
from syncd.config import ClueTargetConfig, CsvSourceConfig, Ef45TargetConfig, LdapSourceConfig

README = Path(__file__).resolve().parents[2] / "README.md"
REFERENCE = "### Every key of sources and targets"
KINDS: dict[str, type[BaseModel]] = {
    '`[sources.NAME]` with `type = "csv"`': CsvSourceConfig,
    '`[sources.NAME]` with `type = "ldap"`': LdapSourceConfig,
    '`[targets.NAME]` with `type = "ef45"`': Ef45TargetConfig,
    '`[targets.NAME]` with `type = "clue"`': ClueTargetConfig,
}
KEY_CELL = re.compile(r"^\| `([a-z0-9_]+)` \|", re.MULTILINE)


def _reference() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(REFERENCE)
    end = text.index("\n## ", start)
    return text[start:end]


def _table_after(section: str, heading: str) -> list[str]:
    """Return the keys in the first column of the table under `#### heading…`."""
    start = section.index(f"#### {heading}")
    rest = section[start + 5 :]
    end = rest.find("\n#### ")
    return KEY_CELL.findall(rest if end < 0 else rest[:end])


@pytest.mark.parametrize("heading", list(KINDS))
def test_every_model_field_is_documented_once(heading: str) -> None:
    documented = _table_after(_reference(), heading)
    fields = list(KINDS[heading].model_fields)
    assert sorted(documented) == sorted(fields), (
        f"README {heading}: missing {sorted(set(fields) - set(documented))}, "
        f"not a key {sorted(set(documented) - set(fields))}"
    )
    assert len(documented) == len(set(documented))


def _commands(group: Any, prefix: str = "syncd") -> list[str]:
    """Return "syncd NAME [SUB]" for every command under `group` (a click-like group)."""
    names = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            names += _commands(command, f"{prefix} {name}")
        else:
            names.append(f"{prefix} {name}")
    return names


def test_command_table_names_every_command() -> None:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| command | what it does |") :]
    table = table[: table.index("\n\n")]
    commands = _commands(command_tree())
    assert "syncd emulate ef45-enroll" in commands and "syncd keys rotate" in commands
    missing = [c for c in commands if f"`{c}" not in table]
    assert not missing, f"README's command table lacks {missing}"
    assert "`syncd --version`" in table and "--all" in table
