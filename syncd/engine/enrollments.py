"""Enrollments in the engine: open the template vault, hand targets a loader.

- `open_vault(config, engine)`: the `TemplateVault` under the configured key, checked
  against the ledger (a wrong key is a LedgerError naming both key ids). Without a
  `[templates]` section it returns None, unless the ledger already holds templates:
  then it raises ConfigError, since a plan without them could not fan them out.
- `template_loader(vault)`: the `TemplateLoader` targets call at apply.

Retention (people gone long enough leave the ledger with their templates, audited) is a
ledger operation: `syncd.ledger.purge`.
"""

from __future__ import annotations

import sqlalchemy as sa

from syncd.config import Config
from syncd.errors import ConfigError
from syncd.ledger.crypto import TemplateKey
from syncd.ledger.templates import TemplateVault, count_enrollments
from syncd.targets.templates import TemplateLoader


def open_vault(config: Config, engine: sa.Engine) -> TemplateVault | None:
    """Return the vault of the configured key, or None when neither key nor templates exist.

    Raise ConfigError if the key is unreadable, or missing while the ledger holds
    templates; LedgerError if the ledger's templates were sealed under another key.
    """
    if config.templates is None:
        held = count_enrollments(engine)
        if held:
            raise ConfigError(
                f"the ledger holds {held} encrypted template(s) but syncd.toml has no "
                "[templates] key: configure the key they were encrypted with"
            )
        return None
    return TemplateVault.open(engine, TemplateKey.from_ref(config.templates.key))


def template_loader(vault: TemplateVault) -> TemplateLoader:
    """Return the loader targets call for (person, modality, digest) → bytes."""

    def load(person_key: str, modality: str, digest: str) -> bytes:
        return vault.load(person_key, modality, expect_digest=digest)

    return load
