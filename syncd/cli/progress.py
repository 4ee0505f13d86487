"""A Rich progress bar per target, fed by apply's Progress protocol.

The live display starts with the first target's bar, not before: apply's question
(`Apply these changes? [y/N]`) comes first, and a live display running meanwhile would
erase it.
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

FAILED = "failed"


class TargetBars:
    """One bar per target; use as a context manager around apply."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<12}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[state]}", style="red", markup=False),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._failed: set[str] = set()

    def start(self, target: str, total: int) -> None:
        """Add the bar of `target` with `total` actions (starting the display)."""
        if not self._progress.live.is_started:
            self._progress.start()
        self._tasks[target] = self._progress.add_task(target, total=total, state="")

    def advance(self, target: str) -> None:
        """Move the bar of `target` one action on (not once it failed: the actions a
        failed target gives up are counted as failed, not drawn as done)."""
        task = self._tasks.get(target)
        if task is not None and target not in self._failed:
            self._progress.advance(task)

    def fail(self, target: str) -> None:
        """Show `target`'s bar as failed, at the count its actions reached."""
        self._failed.add(target)
        task = self._tasks.get(target)
        if task is not None:
            self._progress.update(task, state=FAILED)
            self._progress.stop_task(task)

    def __enter__(self) -> TargetBars:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress.live.is_started:
            self._progress.stop()
