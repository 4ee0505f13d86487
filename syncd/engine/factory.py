"""Build the configured sources and targets from a validated Config.

The CLI, the daemon and the tests all go through here. Sources are chosen by `type`
here; targets through the registry of target kinds (`syncd.targets.registry`), so the
engine never imports a target kind. `transports` lets tests route a target's HTTP
through a chosen httpx transport.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from syncd.config import Config, CsvSourceConfig, LdapSourceConfig
from syncd.errors import UsageError
from syncd.mapping import load_mapping
from syncd.sources.base import Source
from syncd.sources.csv import CsvSource
from syncd.targets import BuildContext, build_target
from syncd.targets.base import Memo, Target
from syncd.targets.templates import TemplateLoader

if TYPE_CHECKING:
    import httpx


def build_sources(config: Config) -> dict[str, Source]:
    """Return each configured source by name, its mapping compiled."""
    sources: dict[str, Source] = {}
    for name, source_config in config.sources.items():
        mapping = load_mapping(source_config.mapping)
        if isinstance(source_config, CsvSourceConfig):
            sources[name] = CsvSource(name, source_config, mapping)
        elif isinstance(source_config, LdapSourceConfig):
            from syncd.sources.ldap import LdapSource

            sources[name] = LdapSource(name, source_config, mapping)
    return sources


def build_targets(
    config: Config,
    *,
    only: frozenset[str] | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    templates: TemplateLoader | None = None,
    lock_memos: Callable[[str], Memo] | None = None,
    template_digest: Callable[[bytes], str] | None = None,
) -> dict[str, Target]:
    """Return each configured target by name (only those in `only`, when given).

    `templates` resolves template digests to bytes when a target applies;
    `template_digest` (the ledger's keyed digest) lets a target observe its templates;
    `lock_memos(name)` gives a target the memo of its lock (`targets.base.Memo`). Raise
    ConfigError naming a target whose `type` no target kind serves, UsageError for a
    name in `only` that syncd.toml does not configure (a typo on the command line).
    """
    if only is not None and (unknown := only - set(config.targets)):
        known = ", ".join(sorted(config.targets)) or "none configured"
        raise UsageError(f"unknown target(s): {', '.join(sorted(unknown))} (known: {known})")
    transports = transports or {}
    targets: dict[str, Target] = {}
    for name, target_config in config.targets.items():
        if only is not None and name not in only:
            continue
        context = BuildContext(
            transport=transports.get(name),
            templates=templates,
            lock_memo=lock_memos(name) if lock_memos is not None else None,
            template_digest=template_digest,
        )
        targets[name] = build_target(name, target_config, context)
    return targets
