"""The physical lines of a CSV file for `csv.reader`, with every read bounded.

`BoundedLines(handle, bound, file_limit)` iterates over the lines of a text file opened
with `newline=""` (each line keeps its `\\r\\n`, `\\r` or `\\n`), reading each with
`readline(bound)`, so a line without end is never held whole. While the record in
progress (the lines since the last `next_record()`) stays within `bound` characters, its
lines are passed on as read. Once it would pass `bound`, the rest of the record is
*skimmed*: its first `bound` characters are kept and, after them, each run of characters
that are neither the delimiter, a quote nor a line break becomes one NUL. The CSV state
machine (quotes, doubled quotes, delimiters, line ends) moves the same way on one such
character as on a run of them, so `csv.reader` still finds where the record ends while
holding only its structure; the caller reports the row (`next_record()` returns True)
instead of reading it, and the rows after it are read as usual.

`Overlong` is raised when even that cannot be bounded: the file passes `file_limit`
characters, a line holds more than `bound` delimiters and quotes, a skimmed record passes
`skim_cap` characters (a quoted cell that never ends: an unclosed quote; each skimmed
line still costs a character or two), or before `rows()` is called (the header) a line
passes `bound`. Imports nothing of syncd.
"""

from __future__ import annotations

import re
from typing import TextIO

SKIM_CAP = 1 << 22
"""Characters a skimmed record may hold (its line breaks, quotes, delimiters): millions of
lines of one quoted cell, and still a few MiB."""
SKIMMED = "\x00"
"""Stands for a run of skimmed characters in the cells of a skimmed record."""


class Overlong(Exception):
    """The file or a record goes past every bound; the message says which."""


class BoundedLines:
    """Lines of `handle` for `csv.reader`, each read and each record bounded (module doc)."""

    def __init__(self, handle: TextIO, bound: int, file_limit: int) -> None:
        self.bound = bound
        self._handle = handle
        self._file_limit = file_limit
        self._total = 0
        self._pending = ""
        self._run: re.Pattern[str] | None = None  # set by rows(): skimming allowed
        self.cap = bound
        """The most characters a record may reach in `csv.reader`'s hands."""
        self._record = 0
        self._skimmed = False

    def rows(self, delimiter: str, bound: int, skim_cap: int = SKIM_CAP) -> None:
        """From now on lines are rows split by `delimiter`: records over `bound` are skimmed,
        up to `skim_cap` characters in all."""
        self.bound = bound
        self.cap = max(skim_cap, 2 * bound)
        self._run = re.compile(f'[^"{re.escape(delimiter)}\r\n]+')

    def next_record(self) -> bool:
        """Start counting a new record; return True if the one just read was skimmed."""
        skimmed = self._skimmed
        self._record = 0
        self._skimmed = False
        return skimmed

    def __iter__(self) -> BoundedLines:
        return self

    def __next__(self) -> str:
        piece = self._piece()
        if not piece:
            raise StopIteration
        ended = piece.endswith(("\n", "\r")) or len(piece) < self.bound  # short: end of file
        if not self._skimmed and ended and self._record + len(piece) <= self.bound:
            self._record += len(piece)
            return piece
        return self._skim(piece, ended)

    def _skim(self, piece: str, ended: bool) -> str:
        """Return the rest of the line that starts with `piece`, skimmed past the bound."""
        run = self._run
        if run is None:
            raise Overlong(f"a line longer than {self.bound} characters before the header ends")
        keep = 0 if self._skimmed else max(self.bound - self._record, 0)
        self._skimmed = True
        parts = [piece[:keep], run.sub(SKIMMED, piece[keep:])]
        size = len(parts[1])
        while not ended and (piece := self._piece()):
            ended = piece.endswith(("\n", "\r")) or len(piece) < self.bound
            parts.append(run.sub(SKIMMED, piece))
            size += len(parts[-1])
            if size > self.bound:
                raise Overlong(f"more than {self.bound} delimiters and quotes in one line")
        line = "".join(parts)
        self._record += len(line)
        if self._record > self.cap:
            raise Overlong(f"a row runs on past {self.cap} characters (a quote never closed?)")
        return line

    def _piece(self) -> str:
        """Return the next line, or its next `bound` characters if it is longer.

        A `\\r\\n` that the limit splits is joined again (read one character further), so a
        piece never ends between the two and line numbers stay right.
        """
        head, self._pending = self._pending, ""
        if head in ("\r", "\n"):
            piece = head
        else:
            piece = head + self._handle.readline(self.bound - len(head))
        if piece.endswith("\r") and (piece == "\r" or len(piece) >= self.bound):
            after = self._handle.read(1)
            if after == "\n":
                piece += after
            else:
                self._pending = after
        self._total += len(piece)
        if self._total > self._file_limit:
            raise Overlong(f"the file passes max_file_bytes {self._file_limit} while read")
        return piece
