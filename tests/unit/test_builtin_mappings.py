"""`mapping = "builtin:NAME"`: the mappings shipped with syncd, named without a path."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import builtin_mappings, load_config, shipped_path
from syncd.errors import ConfigError
from syncd.mapping import load_mapping

CONFIG = """
[ledger]
url = "sqlite:///ledger.db"

[sources.hr]
type = "csv"
path = "people.csv"
mapping = "{mapping}"

[targets.lobby]
type = "ef45"
url = "http://127.0.0.1:9980"
"""


def write_config(tmp_path: Path, mapping: str) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(CONFIG.format(mapping=mapping), encoding="utf-8")
    return path


def test_the_three_shipped_mappings_are_builtins() -> None:
    assert builtin_mappings() == ["active-directory", "hr-csv", "openldap"]


@pytest.mark.parametrize("name", ["hr-csv", "active-directory", "openldap"])
def test_a_builtin_resolves_to_the_shipped_file_and_compiles(tmp_path: Path, name: str) -> None:
    config = load_config(write_config(tmp_path, f"builtin:{name}"))
    mapping = config.sources["hr"].mapping
    assert mapping == shipped_path("mappings", f"{name}.toml")
    assert load_mapping(mapping).source == str(mapping)  # compiles without a problem


def test_a_path_still_names_a_file_relative_to_the_config(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "mappings/site.toml"))
    assert config.sources["hr"].mapping == tmp_path / "mappings" / "site.toml"


def test_an_unknown_builtin_names_the_setting_and_the_known_names(tmp_path: Path) -> None:
    path = write_config(tmp_path, "builtin:hr-cvs")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: sources.hr.mapping: unknown built-in mapping")
    assert "'builtin:hr-cvs'" in message
    assert "builtin:active-directory, builtin:hr-csv, builtin:openldap" in message


def test_an_unreadable_config_is_a_config_error(tmp_path: Path) -> None:
    # A directory stands for any file that cannot be read (tests run as root, who reads
    # any mode); tests/e2e/test_install.py reads the config as an unprivileged uid.
    path = tmp_path / "syncd.toml"
    path.mkdir()
    with pytest.raises(ConfigError, match=r"syncd\.toml: cannot read: "):
        load_config(path)
