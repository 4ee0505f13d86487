"""Apply: the only code that writes to targets.

Targets run in parallel (asyncio), each target's actions one after another in plan order
(removals first, and a card freed before it is given: `engine.order`).
Outcomes are committed to the ledger by a single writer thread in groups
(`engine.writer`: the outcomes of all targets that arrive while one transaction commits
go into the next), so the event loop keeps serving the other targets:

- Before a create is sent, its "pending" record is committed (write-ahead, for every
  create among the target's next `WRITE_AHEAD` actions at once): from then on the ledger
  knows the target may hold the person, whatever happens to this process. A pending
  record whose create never went out costs the next run one create (or one delete of
  nothing, for a leaver).
- Each action's outcome ("applied", "failed") is queued for commit the moment the
  target answers, and it is committed before the target's next outcome is queued: the
  commit runs while the next request is on the wire, and at any instant at most one
  answered action per target is not yet in the ledger. A crash then loses nothing: a
  create's pending record makes the next run create again, which finds the user and
  updates it; an update or delete is planned again and is idempotent.

Temporary errors are retried within the run by one policy (`engine.retrying`: bounded
tries and time, backoff with jitter, a target's Retry-After honoured); what still fails
is recorded as failed with a `next_attempt_at` that grows with the record's attempts.
Whose failure it is decides what happens next (`TargetError.target_level`):

- one record's (a refused card, a 404 on one person, a validation error, a 5xx answer
  about one request): that action fails, and the next one goes on;
- the target's (unreachable, lock busy or lost, a session that will not open, an API key
  refused): the session is reopened (`retrying.session_policy`), and once that is given up every
  remaining action is recorded as failed at once, and `ApplyResult.errors` names the
  target. `STORM_AFTER` actions in a row failing with temporary errors (each after its
  own retries) are a storm: the target is given up at once, the same way. A failed target
  never delays the other targets; only a target-level failure counts toward its
  quarantine (`engine.health`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from tenacity import AsyncRetrying

from syncd.config import ApplyConfig
from syncd.engine import stopping
from syncd.engine.retrying import action_policy, session_policy
from syncd.engine.writer import GroupWriter
from syncd.errors import (
    ActionDeadline,
    SyncdError,
    TargetDeadline,
    TargetStorm,
    TemporaryTargetError,
    cut,
    is_target_level,
)
from syncd.ledger.outcomes import Outcome
from syncd.ledger.store import Ledger
from syncd.model import Action, ActionOutcome, Op, Plan
from syncd.targets.base import Target, TargetSession

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# Actions whose creates get their "pending" records committed together, ahead of sending
# them. Larger saves commits; smaller leaves fewer unsent-but-pending records after a
# crash or stop.
WRITE_AHEAD = 256

STORM_AFTER = 3
"""Actions in a row failing with temporary errors (none applied between) after which the
target, not those records, is in trouble: the session is given up (`TargetStorm`)."""


class Progress(Protocol):
    """Where apply reports its progress (the CLI draws a bar per target)."""

    def start(self, target: str, total: int) -> None:
        """A target begins with `total` actions."""

    def advance(self, target: str) -> None:
        """One action of `target` is done (applied or failed)."""

    def fail(self, target: str) -> None:
        """`target` failed as a whole: its remaining actions are given up (failed)."""


class NoProgress:
    """A Progress that shows nothing."""

    def start(self, target: str, total: int) -> None:
        """Ignore."""

    def advance(self, target: str) -> None:
        """Ignore."""

    def fail(self, target: str) -> None:
        """Ignore."""


@dataclass
class ApplyResult:
    """Counts of one apply: outcome → number of actions, per target and in all.

    `errors`: target → why the target as a whole failed (session not opened or given
    up, or a target-level refusal); record-level failures are only counted.
    `temporary`: target → actions that failed with a temporary error.
    """

    per_target: dict[str, Counter[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    stopped: bool = False
    temporary: Counter[str] = field(default_factory=Counter)

    def count(self, outcome: ActionOutcome) -> int:
        """Return how many actions ended with `outcome` across targets."""
        return sum(c[outcome] for c in self.per_target.values())

    def as_counts(self) -> dict[str, Any]:
        """Return a JSON-able summary for the runs table."""
        return {t: dict(c) for t, c in sorted(self.per_target.items())}


class Applier:
    """Applies one plan's runnable actions and records every outcome in the ledger."""

    def __init__(
        self,
        ledger: Ledger,
        run_id: int,
        settings: ApplyConfig,
        clock: Clock,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.ledger = ledger
        # Once set, the requests in flight are cancelled and the sessions closed (locks
        # released, bounded by `release_timeout_s`); what was not done is left for the
        # next run (its plan recomputes it).
        self.stop = stop
        self.run_id = run_id
        self.settings = settings
        self.clock = clock
        self.progress = progress or NoProgress()
        self.result = ApplyResult()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-writer")
        self._group = GroupWriter(ledger, self._writer)  # group commit (engine.writer)
        self._written_ahead: set[int] = set()  # id() of creates whose pending is committed

    async def run(self, plan: Plan, targets: Mapping[str, Target]) -> ApplyResult:
        """Record the plan's blocked actions, apply the rest; return the counts.

        Once `stop` is set, every target's request in flight is cancelled and its
        session closed (its lock released) within `release_timeout_s`: `result.stopped`.
        """
        try:
            blocked = [a for a in plan.actions if a.blocked is not None]
            await self._group.write(
                [self._outcome(a, ActionOutcome.BLOCKED, error=a.blocked) for a in blocked]
            )
            runnable = plan.runnable()
            names = sorted({a.target for a in runnable})
            self._group.producers = len(names)
            tasks = [
                asyncio.create_task(
                    self._apply_target(targets[n], [a for a in runnable if a.target == n])
                )
                for n in names
            ]
            await self._until_done_or_stopped(tasks)
            # Every target has ended before the writer shuts down; a target's own crash
            # (not a SyncdError: a ledger lost, a bug) is raised once all have.
            for task in tasks:
                if not task.cancelled() and (error := task.exception()) is not None:
                    raise error
        finally:
            self._writer.shutdown(wait=True)
        return self.result

    async def _until_done_or_stopped(self, tasks: Sequence[asyncio.Task[None]]) -> None:
        """Wait for `tasks`; if the stop comes first, cancel them within the release time."""
        if not tasks:
            return
        async with stopping.bridged(self.stop) as flag:
            stopper = asyncio.create_task(flag.wait())
            try:
                await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
                while not stopper.done() and not all(t.done() for t in tasks):
                    await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
            if all(t.done() for t in tasks):
                return
            self.result.stopped = True
            ended = await stopping.cancel_within(tasks, self.settings.release_timeout_s)
            if not ended:
                log.warning("a target's session did not close within release_timeout_s")

    async def _apply_target(self, target: Target, actions: Sequence[Action]) -> None:
        """Apply one target's actions within `target_deadline_s`; record what fails.

        A stop (cancellation) records nothing more: what was not done, the action in
        flight included, is planned again by the next run (a create in flight has its
        pending record already).
        """
        self.progress.start(target.name, len(actions))
        state = _TargetState()
        deadline = self.settings.target_deadline_s
        body = asyncio.create_task(self._sessions(target, actions, state))
        try:
            try:
                done, _ = await asyncio.wait({body}, timeout=deadline)
            except asyncio.CancelledError:
                await stopping.cancel_within([body], self.settings.release_timeout_s)
                raise
            if not done:
                await stopping.cancel_within([body], self.settings.release_timeout_s)
                raise TargetDeadline(
                    f"target_deadline_s of {deadline:g} s passed with "
                    f"{len(actions) - state.done} action(s) not done; they are retried "
                    "on a later run"
                )
            body.result()  # raises what the sessions raised
        except SyncdError as exc:
            self.result.errors[target.name] = str(exc)
            if state.committing is not None:
                await _settled(state.committing)
            failed = [
                self._outcome(a, ActionOutcome.FAILED, error=_describe(exc))
                for a in actions[state.done :]
            ]
            await self._group.write(failed)
            self.progress.fail(target.name)
        finally:
            self._group.producers -= 1  # the others' groups stop waiting for this target
            if state.committing is not None:
                await state.committing

    async def _sessions(
        self, target: Target, actions: Sequence[Action], state: _TargetState
    ) -> None:
        """Apply `actions` in sessions of `target`, reopened after a target-level
        temporary error (`retrying.session_policy`); `state` counts what is done."""
        # One per target (its actions run in turn), counting the tries of the action at
        # `state.done` across sessions.
        policy = action_policy(self.settings, lambda: state.tries)
        async for attempt in session_policy(self.settings):
            with attempt:
                async with target.session() as session:
                    streak = 0  # temporary failures in a row in this session
                    for index in range(state.done, len(actions)):
                        if self.stop is not None and self.stop.is_set():
                            self.result.stopped = True
                            return
                        await self._write_ahead(actions, index)
                        outcome, temporary = await self._apply_one(
                            session, actions[index], policy, state
                        )
                        if state.committing is not None:
                            await state.committing
                        state.committing = self._group.submit(outcome)
                        self.progress.advance(target.name)
                        state.done, state.tries, state.last_error = state.done + 1, 0, None
                        streak = streak + 1 if temporary else 0
                        if streak >= STORM_AFTER:
                            raise TargetStorm(
                                f"{streak} actions in a row failed with temporary "
                                f"errors; the last: {outcome.error}"
                            )

    async def _write_ahead(self, actions: Sequence[Action], index: int) -> None:
        """Commit "pending" for the creates from `index` on, unless already done."""
        if actions[index].op is not Op.CREATE or id(actions[index]) in self._written_ahead:
            return
        window = [a for a in actions[index : index + WRITE_AHEAD] if a.op is Op.CREATE]
        now = self.clock()
        await self._group.write(
            [Outcome(self.run_id, a, ActionOutcome.PENDING, now) for a in window]
        )
        self._written_ahead.update(id(a) for a in window)

    async def _apply_one(
        self, session: TargetSession, action: Action, policy: AsyncRetrying, state: _TargetState
    ) -> tuple[Outcome, bool]:
        """Execute `action` under `policy`; return its outcome to record, and whether it
        failed with a temporary error.

        A target-level temporary error that outlasts the action's tries is raised: the
        session itself may be broken, so the session policy reopens it; in the new
        session the action, its tries spent, fails without another try. Any other error
        fails this action alone; a target-level one (an API key refused mid-run) also
        marks the target's run as failed.
        """
        if state.last_error is not None and state.tries > self.settings.retries:
            self.result.temporary[action.target] += 1
            return self._outcome(action, ActionOutcome.FAILED, error=state.last_error), True
        try:
            remote_id = await self._within_deadline(session, action, policy, state)
        except TemporaryTargetError as exc:
            if exc.target_level:
                state.last_error = _describe(exc)
                raise
            self.result.temporary[action.target] += 1
            return self._outcome(action, ActionOutcome.FAILED, error=_describe(exc)), True
        except SyncdError as exc:
            if is_target_level(exc):
                self.result.errors.setdefault(action.target, str(exc))
            return self._outcome(action, ActionOutcome.FAILED, error=_describe(exc)), False
        return self._outcome(action, ActionOutcome.APPLIED, remote_id=remote_id), False

    async def _within_deadline(
        self, session: TargetSession, action: Action, policy: AsyncRetrying, state: _TargetState
    ) -> str | None:
        """Execute `action` with its retries, all within `action_deadline_s`; raise
        ActionDeadline when it passes (the request in flight is cancelled)."""
        limit = self.settings.action_deadline_s
        try:
            async with asyncio.timeout(limit) as deadline:
                async for attempt in policy:
                    with attempt:
                        state.tries += 1
                        return await session.apply(action)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise ActionDeadline(
                f"action_deadline_s of {limit:g} s passed before the target answered "
                "(retries included)"
            ) from None
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    def _outcome(
        self,
        action: Action,
        outcome: ActionOutcome,
        remote_id: str | None = None,
        error: str | None = None,
    ) -> Outcome:
        """Return the ledger's row for `outcome` of `action` and count it in the result."""
        now = self.clock()
        next_attempt = self._next_attempt(action, now) if outcome is ActionOutcome.FAILED else None
        self.result.per_target.setdefault(action.target, Counter())[outcome] += 1
        return Outcome(self.run_id, action, outcome, now, remote_id, error, next_attempt)

    def _next_attempt(self, action: Action, now: datetime) -> datetime:
        settings = self.settings
        delay = min(
            settings.next_attempt_base_s * (2**action.attempts), settings.next_attempt_max_s
        )
        return now + timedelta(seconds=delay)


@dataclass
class _TargetState:
    """How far one target's apply got: actions done, the tries of the next one (across
    sessions) and its last target-level error, and the last outcome's commit."""

    done: int = 0
    tries: int = 0
    last_error: str | None = None
    committing: asyncio.Future[None] | None = None


async def _settled(future: asyncio.Future[None]) -> None:
    """Wait for `future`, ignoring its error (raised again where it is awaited last)."""
    with contextlib.suppress(Exception):
        await asyncio.shield(future)


def _describe(exc: BaseException) -> str:
    return cut(f"{type(exc).__name__}: {exc}")
