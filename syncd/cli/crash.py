"""What the CLI does with an exception it did not expect (a bug): one line, exit 70.

The full traceback goes to a file only its owner may read (0600: a traceback may show
local values), in `$STATE_DIRECTORY` under systemd, else in the temporary directory,
and to the debug log; `syncd --debug COMMAND` prints it on the terminal instead.
"""

from __future__ import annotations

import logging
import os
import tempfile
import traceback
from pathlib import Path

from syncd.errors import cut

log = logging.getLogger("syncd.cli")
MESSAGE_LIMIT = 200


def save_traceback(error: BaseException) -> Path | None:
    """Write `error`'s traceback to a new 0600 file; return its path, None if no
    directory would take it."""
    text = "".join(traceback.format_exception(error))
    for where in _directories():
        try:
            handle, name = tempfile.mkstemp(prefix="syncd-crash-", suffix=".txt", dir=where)
        except OSError:
            continue
        with os.fdopen(handle, "w", encoding="utf-8") as file:  # mkstemp: mode 0600
            file.write(text)
        return Path(name)
    return None


def _directories() -> list[str | None]:
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return [state, None] if state else [None]  # None: tempfile's own choice


def report_crash(error: BaseException, *, debug: bool) -> str:
    """Log `error`'s traceback (debug level) and return the one line to print (without
    the `error:` prefix). Without `debug` the traceback is saved to a file the line
    names; with it the caller prints the traceback itself."""
    log.debug("unexpected error", exc_info=error)
    text = cut(str(error), MESSAGE_LIMIT)
    line = f"unexpected {type(error).__name__}{': ' + text if text else ''} — a bug"
    if debug:
        return line
    saved = save_traceback(error)
    return f"{line}; full traceback in {saved}" if saved else f"{line}; traceback not saved"
