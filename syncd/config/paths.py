"""Files syncd.toml names or syncd ships: shipped files (`migrations/`, `mappings/`),
`builtin:` mappings, relative paths made absolute against the config's directory, and
the state directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from syncd.config.schema import Config, CsvSourceConfig, LedgerConfig, SourceConfig
from syncd.errors import ConfigError

_PACKAGE = Path(__file__).resolve().parent.parent


def shipped_path(*parts: str) -> Path:
    """Return a file shipped with syncd (`migrations/…`, `mappings/…`).

    A built wheel carries them under `syncd/_data/`; an editable install or a checkout
    has them at the repository's top. Raise ConfigError if neither has it.
    """
    for base in (_PACKAGE / "_data", _PACKAGE.parent):
        candidate = base.joinpath(*parts)
        if candidate.exists():
            return candidate
    raise ConfigError(f"{'/'.join(parts)} is missing from this installation of syncd")


BUILTIN = "builtin:"
"""Prefix of a mapping shipped with syncd: `mapping = "builtin:hr-csv"`."""


def builtin_mappings() -> list[str]:
    """Return the names of the mappings shipped with syncd (`hr-csv`, ...), sorted."""
    return sorted(path.stem for path in shipped_path("mappings").glob("*.toml"))


def resolve_mapping(mapping: Path, base: Path, setting: str) -> Path:
    """Return the file a source's `mapping` names: `builtin:NAME` is the mapping shipped
    with syncd (in the installed package, so `pip install .` is enough), anything else a
    path, relative ones under `base`. Raise ConfigError naming `setting` and the known
    names for an unknown built-in."""
    text = str(mapping)
    if not text.startswith(BUILTIN):
        return base / mapping
    name = text.removeprefix(BUILTIN)
    known = builtin_mappings()
    if name not in known:
        names = ", ".join(BUILTIN + known_name for known_name in known)
        raise ConfigError(f"{setting}: unknown built-in mapping {text!r} (known: {names})")
    return shipped_path("mappings", f"{name}.toml")


def resolve_paths(config: Config, base: Path) -> Config:
    """Return `config` with relative file paths (and a relative SQLite URL) made absolute
    and `builtin:` mappings resolved; raise ConfigError for an unknown built-in mapping."""
    sources: dict[str, SourceConfig] = {}
    for name, source in config.sources.items():
        mapping = resolve_mapping(source.mapping, base, f"sources.{name}.mapping")
        update: dict[str, Path] = {"mapping": mapping}
        if isinstance(source, CsvSourceConfig):
            update["path"] = base / source.path
        sources[name] = source.model_copy(update=update)
    ledger = _resolve_ledger(config.ledger, base)
    return config.model_copy(update={"sources": sources, "ledger": ledger})


def _resolve_ledger(ledger: LedgerConfig, base: Path) -> LedgerConfig:
    url = _absolute_sqlite(ledger.url, base)
    state = base / (ledger.state_directory or default_state_directory(url, base))
    return ledger.model_copy(update={"url": url, "state_directory": state})


def state_directory(ledger: LedgerConfig) -> Path:
    """Return syncd's state directory (pin.key, stored reports): `[ledger] state_directory`
    as loaded, else its default seen from the working directory."""
    return ledger.state_directory or default_state_directory(ledger.url, Path.cwd())


def default_state_directory(url: str, base: Path) -> Path:
    """Return `$STATE_DIRECTORY` (systemd's first), else the directory of an absolute
    SQLite ledger URL's file, else `base`."""
    if systemd := os.environ.get("STATE_DIRECTORY", "").split(":")[0]:
        return Path(systemd)
    if url.startswith("sqlite:////"):
        return Path(url.removeprefix("sqlite:///").split("?")[0]).parent
    return base


def _absolute_sqlite(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url.startswith(prefix + "/") or url == prefix + ":memory:":
        return url
    return prefix + str(base / url.removeprefix(prefix))
