"""Registers the EF-45 kind (`type = "ef45"`) with `syncd.targets.registry` on import."""

from __future__ import annotations

from typing import Any

from syncd.config import Ef45TargetConfig
from syncd.errors import ConfigError
from syncd.targets.ef45.target import Ef45Target
from syncd.targets.registry import BuildContext, register


def build(name: str, config: Any, context: BuildContext) -> Ef45Target:
    """Return the EF-45 terminal `name`; raise ConfigError if `config` is not an EF-45's."""
    if not isinstance(config, Ef45TargetConfig):
        raise ConfigError(f"targets.{name}: not an EF-45 configuration")
    return Ef45Target(
        name,
        config,
        transport=context.transport,
        templates=context.templates,
        lock_memo=context.lock_memo,
        template_digest=context.template_digest,
    )


register("ef45", build)
