"""The consoles of the command line: user text printed as written, piped text not wrapped.

Every message may carry a name, a path or a remote answer with brackets in it
(`[templates]`, `[ledger] url`): Rich markup would eat those words, so these consoles
interpret none (style with `style=` or `rich.text.Text` instead). Output that goes to a
pipe or a file is not wrapped at 80 columns: a script or a mail reads each value whole
(`$COLUMNS`, when set, still wins).
"""

from __future__ import annotations

import os

from rich.console import Console

PIPED_WIDTH = 4096  # wide enough that no value is cut; tables stay at their natural width


def make_console(*, stderr: bool = False, markup: bool = False) -> Console:
    """Return a Console for stdout (or stderr) that prints text as written (`markup`
    True only for a renderer that escapes its values itself) and, when not writing to a
    terminal, does not wrap."""
    piped = not Console(stderr=stderr).is_terminal and "COLUMNS" not in os.environ
    return Console(
        stderr=stderr,
        markup=markup,
        highlight=False,
        soft_wrap=piped,
        width=PIPED_WIDTH if piped else None,
    )
