"""Enrollments in the engine: open the template vault, hand targets a loader, purge.

- `open_vault(config, engine)`: the `TemplateVault` under the configured key, checked
  against the ledger (a wrong key is a LedgerError naming both key ids). Without a
  `[templates]` section it returns None, unless the ledger already holds templates:
  then it raises ConfigError, since a plan without them could not fan them out.
- `template_loader(vault)`: the `TemplateLoader` targets call at apply.
- `purge_gone(engine, delete_after, now)`: retention. People gone from every source for
  longer than `delete_after` who are held by no target any more leave the ledger, and
  their templates with them (the only way a template leaves the ledger).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from syncd.config import Config
from syncd.errors import ConfigError
from syncd.ledger.crypto import TemplateKey
from syncd.ledger.schema import enrollments, people, target_records
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


def purge_gone(engine: sa.Engine, delete_after: timedelta, now: datetime) -> int:
    """Delete people gone longer than `delete_after` and held by no target, with their
    templates (one transaction); return how many people left the ledger."""
    held = sa.select(target_records.c.person_key).where(target_records.c.person_key == people.c.key)
    due = sa.select(people.c.key).where(
        people.c.gone_since.is_not(None),
        people.c.gone_since <= now - delete_after,
        ~sa.exists(held),
    )
    with engine.begin() as conn:
        keys = list(conn.execute(due).scalars())
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            conn.execute(enrollments.delete().where(enrollments.c.person_key.in_(part)))
            conn.execute(people.delete().where(people.c.key.in_(part)))
    return len(keys)
