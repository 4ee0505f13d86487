"""A SQLite ledger's files are private to syncd's user: mode 0600, whatever the umask.

The ledger holds names and card numbers (PINs are sealed, `ledger.pins`). SQLite gives
its `-wal`, `-shm` and `-journal` files the mode of the database file (it sets it
explicitly, whatever the umask), so a database file made private first keeps them
private too. `prepare_sqlite_file` therefore makes a missing database file itself, empty
(an empty file is an empty SQLite database) with mode 0600, before SQLAlchemy opens it.

An existing ledger file (or sidecar) that group or others may read was most likely made
by an older syncd under umask 022: it is made private (0600) and syncd says so once, on
stderr or the journal. syncd is the only program meant to read the ledger; a backup runs
as syncd's user or root. If syncd may not change it, it warns with the command to run.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

log = logging.getLogger(__name__)

SIDECARS = ("-wal", "-shm", "-journal")


def sqlite_path(url: str) -> Path | None:
    """Return the database file of a SQLite URL; None for another database, an in-memory
    one or a `file:` URI (whose options syncd does not interpret)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:") or parsed.query.get("uri"):
        return None
    return Path(database)


def prepare_sqlite_file(path: Path) -> None:
    """Make `path` an empty private file if it is missing; make it (and its sidecars)
    private if group or others may read them. Errors are left to SQLite to report."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        make_private(path)
    except OSError:
        return  # no such directory, no permission: SQLite's own error says it
    else:
        os.close(fd)  # the umask may only take bits away from 0600


def make_private(path: Path) -> None:
    """Take every permission of group and others from the ledger file and its sidecars,
    saying so; warn (with the fix) where this process may not."""
    for file in (path, *(path.with_name(path.name + suffix) for suffix in SIDECARS)):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except OSError:
            continue
        if not mode & 0o077:
            continue
        try:
            os.chmod(file, mode & 0o700)
        except OSError as exc:
            log.warning(
                "ledger file %s is readable by group or others (mode %04o) and syncd cannot "
                "change that (%s): run chmod 600 %s",
                file, mode, exc.strerror, file,
            )  # fmt: skip
        else:
            log.warning(
                "ledger file %s was readable by group or others (mode %04o): made it "
                "private (mode %04o); the ledger holds names and card numbers",
                file, mode, mode & 0o700,
            )  # fmt: skip
