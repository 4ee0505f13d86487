"""The deep look gives each target its own deadline: one terminal that never finishes
its list is planned from the ledger alone, and the others are observed as usual."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from syncd.engine.deep import observe_targets
from syncd.model import Record


class Stuck:
    """A target whose list never completes (it waits on an event nobody sets)."""

    name = "stuck"

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def observe(self) -> Mapping[str, Record]:
        self.started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class Quick:
    name = "quick"

    async def observe(self) -> Mapping[str, Record]:
        return {"E1": {"user_uuid": "E1"}}


def test_a_look_that_never_ends_is_cut_at_the_deadline_and_the_others_are_kept() -> None:
    stuck = Stuck()
    found = asyncio.run(observe_targets({"stuck": stuck, "quick": Quick()}, 0.05))  # type: ignore[dict-item]
    assert stuck.started.is_set()
    assert found["stuck"].records is None
    assert found["stuck"].error == "no complete answer within 0.05 s (apply.target_deadline_s)"
    assert found["quick"].records == {"E1": {"user_uuid": "E1"}}
