"""Target kinds by `type` name: the one place a configured target is built.

Each kind lives in its own package and registers its builder when that package's `kind`
module is imported (`register`). The registry imports a kind only when a target of that
type is built, so a configuration without CLUe never imports the CLUe client (start-up
time: the CLI runs as a short-lived process).

    target = build_target("door-1", config.targets["door-1"], BuildContext(...))

`build_target` raises ConfigError naming the target and the type when no kind of that
type exists. The engine (`syncd.engine.factory`) builds every target through here and
never imports a kind itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from syncd.errors import ConfigError
from syncd.targets.base import Memo, Target
from syncd.targets.templates import TemplateLoader

if TYPE_CHECKING:
    import httpx

KIND_MODULES = {
    "ef45": "syncd.targets.ef45.kind",
    "clue": "syncd.targets.clue.kind",
}
"""Type name → the module that registers that kind when imported."""


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What a target is built with besides its configuration.

    `transport`: route the target's HTTP through this httpx transport (tests);
    `templates`: resolves template digests to bytes at apply (None: no template key);
    `lock_memo`: durable memo of the target's lock across processes (None: this process);
    `template_digest`: the ledger's keyed digest of template bytes, so that a target can
    observe its templates as digests comparable with the ledger's (None: it cannot).
    """

    transport: httpx.AsyncBaseTransport | None = None
    templates: TemplateLoader | None = None
    lock_memo: Memo | None = None
    template_digest: Callable[[bytes], str] | None = None


Builder = Callable[[str, Any, BuildContext], Target]
"""Given (target name, its validated `[targets.NAME]` config, context), return the target."""

_builders: dict[str, Builder] = {}


def register(kind: str, builder: Builder) -> None:
    """Make `builder` the builder of targets of `type = kind` (a later call replaces it)."""
    _builders[kind] = builder


def known_kinds() -> frozenset[str]:
    """Return every type name a target may have."""
    return frozenset(KIND_MODULES) | frozenset(_builders)


def builder_for(kind: str) -> Builder | None:
    """Return the builder of `kind`, importing its module the first time; None if unknown."""
    if kind not in _builders and kind in KIND_MODULES:
        importlib.import_module(KIND_MODULES[kind])
    return _builders.get(kind)


def build_target(name: str, config: Any, context: BuildContext | None = None) -> Target:
    """Return the target `name` built from its config (whose `type` names its kind).

    Raise ConfigError naming the target and its type if no kind of that type exists.
    """
    kind = getattr(config, "type", None)
    builder = builder_for(kind) if isinstance(kind, str) else None
    if builder is None:
        known = ", ".join(sorted(known_kinds()))
        raise ConfigError(f"targets.{name}: unknown target type {kind!r} (known: {known})")
    return builder(name, config, context or BuildContext())
