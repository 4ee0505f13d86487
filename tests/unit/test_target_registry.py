"""The registry of target kinds: built by `type`, unknown types refused by name, kinds
imported only when configured, and the engine dispatching only through capabilities."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from syncd import targets as registry_api
from syncd.config import ClueTargetConfig, Ef45TargetConfig, SecretRef
from syncd.errors import ConfigError
from syncd.targets import registry
from syncd.targets.base import CollectsEvents, HasClock, HoldsTemplates, Observable, Target


def test_unknown_type_names_the_target_and_the_type() -> None:
    with pytest.raises(ConfigError, match=r"targets\.door-9: unknown target type 'ef46'") as info:
        registry_api.build_target("door-9", SimpleNamespace(type="ef46"))
    assert "clue" in str(info.value) and "ef45" in str(info.value)  # what would be known
    with pytest.raises(ConfigError, match=r"targets\.odd: unknown target type None"):
        registry_api.build_target("odd", SimpleNamespace())


def test_build_targets_refuses_a_config_of_an_unregistered_type() -> None:
    from syncd.engine.factory import build_targets

    config = SimpleNamespace(targets={"gate": SimpleNamespace(type="suprema-x")})
    with pytest.raises(ConfigError, match=r"targets\.gate: unknown target type 'suprema-x'"):
        build_targets(config)  # type: ignore[arg-type]


def test_builtin_kinds_build_with_their_capabilities() -> None:
    ef45 = registry_api.build_target("door", Ef45TargetConfig(type="ef45", url="http://x"))
    clue = registry_api.build_target(
        "place",
        ClueTargetConfig(type="clue", place_id=1, api_key=SecretRef(env="CLUE_KEY")),
    )
    assert (ef45.kind, ef45.name, clue.kind, clue.name) == ("ef45", "door", "clue", "place")
    assert all(isinstance(ef45, c) for c in (CollectsEvents, HasClock, HoldsTemplates, Observable))
    assert isinstance(clue, CollectsEvents)
    assert not any(isinstance(clue, c) for c in (HasClock, HoldsTemplates))


def test_a_kind_registered_at_run_time_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_builders", dict(registry._builders))
    built: list[tuple[str, Any]] = []

    def build(name: str, config: Any, context: registry.BuildContext) -> Target:
        built.append((name, config))
        return SimpleNamespace(name=name, kind="fake")  # type: ignore[return-value]

    registry_api.register("fake", build)
    config = SimpleNamespace(type="fake")
    assert registry_api.build_target("f1", config).name == "f1"
    assert built == [("f1", config)] and "fake" in registry.known_kinds()


def test_kinds_are_imported_only_when_configured() -> None:
    script = """
import sys
from syncd.config import Ef45TargetConfig
import syncd.engine.run, syncd.engine.events, syncd.engine.backfill, syncd.engine.clock
loaded = lambda p: sorted(m for m in sys.modules if m.startswith(p))
before = (loaded("syncd.targets.ef45"), loaded("syncd.targets.clue"), "httpx" in sys.modules)
from syncd.targets import build_target
build_target("door", Ef45TargetConfig(type="ef45", url="http://x"))
print(before, bool(loaded("syncd.targets.ef45")), loaded("syncd.targets.clue"))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "([], [], False) True []"
