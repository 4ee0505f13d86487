"""Target kinds (one EF-45 terminal, one CLUe place) behind one protocol (`base`).

The engine builds targets through the registry re-exported here (`registry`), and
imports nothing of a kind's own package (`ef45`, `clue`): those are imported lazily,
only for the types a configuration names.
"""

from syncd.targets.registry import BuildContext, build_target, register

__all__ = ["BuildContext", "build_target", "register"]
