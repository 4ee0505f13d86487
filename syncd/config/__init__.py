"""syncd.toml: the schema (pydantic, extra keys forbidden), loading, and secrets.

`load_config(path)` returns a validated `Config` or raises `ConfigError` listing every
problem at once, each with its dotted path (`targets.lobby.url: Field required`); a key
the schema does not know reads "unknown key", with a hint at the closest known key.
Time zones, crontab lines, versions and credential names are checked here, at load, not
when first used. Relative paths in the file (the CSV, the mapping, a SQLite ledger) are
resolved against the directory of the config file, so a config works from any working
directory.

The parts: `schema` (one model per table), `checks` (zones, cron lines, versions, names),
`secretref` (secrets: never in the TOML, read only when needed), `paths` (shipped files,
`builtin:` mappings, the state directory), `problems` (error lines, shared with the
mapping files). What callers use is re-exported here: `from syncd.config import Config`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import ValidationError

from syncd.config.checks import (
    CronLine as CronLine,
)
from syncd.config.checks import (
    TimeZoneName as TimeZoneName,
)
from syncd.config.checks import (
    Version as Version,
)
from syncd.config.checks import (
    check_cron as check_cron,
)
from syncd.config.checks import (
    check_zone as check_zone,
)
from syncd.config.paths import (
    BUILTIN as BUILTIN,
)
from syncd.config.paths import (
    builtin_mappings as builtin_mappings,
)
from syncd.config.paths import (
    default_state_directory as default_state_directory,
)
from syncd.config.paths import (
    resolve_mapping as resolve_mapping,
)
from syncd.config.paths import (
    resolve_paths as resolve_paths,
)
from syncd.config.paths import (
    shipped_path as shipped_path,
)
from syncd.config.paths import (
    state_directory as state_directory,
)
from syncd.config.problems import (
    format_validation_error as format_validation_error,
)
from syncd.config.schema import (
    CLUE_EVENTS_PATH as CLUE_EVENTS_PATH,
)
from syncd.config.schema import (
    AccessConfig as AccessConfig,
)
from syncd.config.schema import (
    ApplyConfig as ApplyConfig,
)
from syncd.config.schema import (
    ClueTargetConfig as ClueTargetConfig,
)
from syncd.config.schema import (
    Config as Config,
)
from syncd.config.schema import (
    CsvSourceConfig as CsvSourceConfig,
)
from syncd.config.schema import (
    DaemonConfig as DaemonConfig,
)
from syncd.config.schema import (
    Ef45TargetConfig as Ef45TargetConfig,
)
from syncd.config.schema import (
    LdapSourceConfig as LdapSourceConfig,
)
from syncd.config.schema import (
    LedgerConfig as LedgerConfig,
)
from syncd.config.schema import (
    NotifyConfig as NotifyConfig,
)
from syncd.config.schema import (
    SafetyConfig as SafetyConfig,
)
from syncd.config.schema import (
    SourceConfig as SourceConfig,
)
from syncd.config.schema import (
    TargetConfig as TargetConfig,
)
from syncd.config.schema import (
    TemplatesConfig as TemplatesConfig,
)
from syncd.config.secretref import (
    CREDENTIAL_NAME as CREDENTIAL_NAME,
)
from syncd.config.secretref import (
    MAX_SECRET_BYTES as MAX_SECRET_BYTES,
)
from syncd.config.secretref import (
    SecretRef as SecretRef,
)
from syncd.config.secretref import (
    Strict as Strict,
)
from syncd.config.secretref import (
    check_credential_name as check_credential_name,
)
from syncd.config.secretref import (
    check_private_file as check_private_file,
)
from syncd.config.secretref import (
    credential_path as credential_path,
)
from syncd.config.secretref import (
    read_secret_file as read_secret_file,
)
from syncd.errors import ConfigError

CONFIG_ENV = "SYNCD_CONFIG"


def load_config(path: Path | str | None = None) -> Config:
    """Given a path (or $SYNCD_CONFIG, or ./syncd.toml), return the validated Config.

    Raise ConfigError naming every problem with its dotted path if the file is missing,
    is not TOML, or does not match the schema.
    """
    chosen = Path(path or os.environ.get(CONFIG_ENV) or "syncd.toml")
    try:
        raw = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{chosen}: no such file (use --config or ${CONFIG_ENV})") from None
    except OSError as exc:
        # Typically a service user that may not read the file (docs/service.md: 0644).
        raise ConfigError(f"{chosen}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{chosen}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{chosen}: not valid TOML: {exc}") from None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(chosen, exc, Config)) from None
    try:
        return resolve_paths(config, chosen.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{chosen}: {exc}") from None
