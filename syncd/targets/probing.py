"""What `syncd probe` finds about a real target: one finding per assumption syncd relies on.

A probe is run once by an installer against a real EF-45 terminal or CLUe place. Each
target kind checks the assumptions its client makes where the vendor evidence is silent
or thin (`docs/ef45-behaviour.md`) and returns a `ProbeReport`: for each assumption what
was observed, whether it holds, what syncd will do, and which configuration key to set
when the device differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Finding:
    """One assumption checked against the real system.

    `holds` is True when the device behaves as syncd assumes (or as configured), False
    when it differs (then `config` names the key(s) to set, or says why syncd cannot
    work with it), None when the probe could not check it (the device refused the test
    itself; syncd keeps its safe default).
    """

    assumption: str
    observed: str
    holds: bool | None
    syncd_does: str
    config: str = ""


@dataclass(slots=True)
class ProbeReport:
    """Every finding of one probe of one target, in the order they were checked.

    `cleanup_error` is set when the probe could not remove what it created (the reserved
    probe user or auth): the admin must remove it by hand, and the probe fails.
    """

    target: str
    kind: str
    findings: list[Finding] = field(default_factory=list)
    cleanup_error: str | None = None

    def add(
        self,
        assumption: str,
        observed: str,
        holds: bool | None,
        syncd_does: str,
        config: str = "",
    ) -> Finding:
        """Record one finding and return it."""
        finding = Finding(assumption, observed, holds, syncd_does, config)
        self.findings.append(finding)
        return finding

    @property
    def all_hold(self) -> bool:
        """Whether no assumption was found false and the probe cleaned up after itself."""
        return self.cleanup_error is None and all(f.holds is not False for f in self.findings)


@runtime_checkable
class Probeable(Protocol):
    """A target kind that can check its assumptions on the real system (`syncd probe`)."""

    async def probe(self) -> ProbeReport:
        """Check every assumption on the real system, leaving nothing behind."""
        ...
