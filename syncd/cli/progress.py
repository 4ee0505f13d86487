"""A Rich progress bar per target, fed by apply's Progress protocol."""

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


class TargetBars:
    """One bar per target; use as a context manager around apply."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<12}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def start(self, target: str, total: int) -> None:
        """Add the bar of `target` with `total` actions."""
        self._tasks[target] = self._progress.add_task(target, total=total)

    def advance(self, target: str) -> None:
        """Move the bar of `target` one action on."""
        task = self._tasks.get(target)
        if task is not None:
            self._progress.advance(task)

    def __enter__(self) -> TargetBars:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()
