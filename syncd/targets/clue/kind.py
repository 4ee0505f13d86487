"""Registers the CLUe kind (`type = "clue"`) with `syncd.targets.registry` on import."""

from __future__ import annotations

import asyncio
from typing import Any

from syncd.config import ClueTargetConfig
from syncd.errors import ConfigError
from syncd.targets.clue.target import ClueTarget, FaceImageLoader
from syncd.targets.registry import BuildContext, register
from syncd.targets.templates import FACE_IMAGE, TemplateLoader


def build(name: str, config: Any, context: BuildContext) -> ClueTarget:
    """Return the CLUe place `name`; raise ConfigError if `config` is not a CLUe's."""
    if not isinstance(config, ClueTargetConfig):
        raise ConfigError(f"targets.{name}: not a CLUe configuration")
    templates = context.templates
    return ClueTarget(
        name,
        config,
        transport=context.transport,
        face_images=face_image_loader(templates) if templates is not None else None,
    )


def face_image_loader(templates: TemplateLoader) -> FaceImageLoader:
    """Adapt the ledger's (blocking) template loader to the CLUe target's face images."""

    async def load(person_key: str, image_digest: str) -> bytes:
        return await asyncio.to_thread(templates, person_key, FACE_IMAGE, image_digest)

    return load


register("clue", build)
