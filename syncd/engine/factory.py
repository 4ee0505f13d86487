"""Build the configured sources and targets from a validated Config.

This is the one place that knows which class serves which `type`; the CLI, the daemon
and the tests all go through it. `transports` lets tests route a target's HTTP through a
chosen httpx transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import httpx

from syncd.config import (
    ClueTargetConfig,
    Config,
    CsvSourceConfig,
    Ef45TargetConfig,
    LdapSourceConfig,
)
from syncd.errors import ConfigError
from syncd.mapping import load_mapping
from syncd.sources.base import Source
from syncd.sources.csv import CsvSource
from syncd.targets.base import Target
from syncd.targets.clue.target import ClueTarget, FaceImageLoader
from syncd.targets.ef45.lockstate import LockMemo
from syncd.targets.ef45.target import Ef45Target
from syncd.targets.templates import FACE_IMAGE, TemplateLoader


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


def _face_image_loader(templates: TemplateLoader) -> FaceImageLoader:
    """Adapt the ledger's (blocking) template loader to the CLUe target's face images."""

    async def load(person_key: str, image_digest: str) -> bytes:
        return await asyncio.to_thread(templates, person_key, FACE_IMAGE, image_digest)

    return load


def build_targets(
    config: Config,
    *,
    only: frozenset[str] | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    templates: TemplateLoader | None = None,
    lock_memos: Callable[[str], LockMemo] | None = None,
    template_digest: Callable[[bytes], str] | None = None,
) -> dict[str, Target]:
    """Return each configured target by name (only those in `only`, when given).

    `templates` resolves template digests to bytes when an EF-45 target applies;
    `template_digest` (the ledger's keyed digest) lets an EF-45 observe its templates;
    `lock_memos(name)` gives an EF-45 target the memo of its lock (see LockMemo).
    """
    if only is not None and (unknown := only - set(config.targets)):
        raise ConfigError(f"unknown target(s): {', '.join(sorted(unknown))}")
    transports = transports or {}
    targets: dict[str, Target] = {}
    for name, target_config in config.targets.items():
        if only is not None and name not in only:
            continue
        if isinstance(target_config, Ef45TargetConfig):
            targets[name] = Ef45Target(
                name,
                target_config,
                transport=transports.get(name),
                templates=templates,
                lock_memo=lock_memos(name) if lock_memos is not None else None,
                template_digest=template_digest,
            )
        elif isinstance(target_config, ClueTargetConfig):
            targets[name] = ClueTarget(
                name,
                target_config,
                transport=transports.get(name),
                face_images=_face_image_loader(templates) if templates is not None else None,
            )
    return targets
