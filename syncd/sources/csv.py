"""The HR CSV export as a source of truth: always a complete read, streamed row by row.

`CsvSource(name, config, mapping).read()` returns every person of the file, or raises:

- `SourceError` when the file cannot be opened;
- `SourceRefused` when its answer cannot be trusted: empty file, no data rows, a header
  that lacks a column the mapping reads (or names one twice) or that cannot be decoded,
  malformed quoting, a file over `max_file_bytes`, or more bad rows than `max_bad_share`.

Encoding `auto`: a UTF-8 BOM → utf-8-sig; a file that is *clearly* cp1252 — at least one
byte that is not valid UTF-8 and not a single valid multi-byte UTF-8 sequence — → cp1252;
anything else → UTF-8. Text is decoded row by row whatever the encoding: a row with a byte
the encoding cannot decode is a bad row named by its line and column ("not valid UTF-8 at
byte 3 of the cell"), and every other row keeps its text, so one stray byte never turns
the whole file into cp1252 ("José" stays "José"). A file that mixes valid UTF-8 and
invalid bytes is UTF-8 with bad rows, never re-decoded; if it really is cp1252 with one
accidental UTF-8 sequence, its non-ASCII rows are bad rows and `max_bad_share` refuses it.

Bounds: a file over `max_file_bytes` is refused before it is read (and while it is read,
should it grow). A cell over `max_cell_bytes` (counted in the file's bytes) makes its row
a bad row named by line and column; the rest is read. No line is held whole: lines are
read in pieces of at most `max_cell_bytes` × (header columns + 1) characters, and a row
longer than that is not kept but skimmed to its end (`syncd.sources.csvlines`) and
reported by the column where it went over. Memory is thus bounded by the people read
plus one such row.

Delimiter `auto`: the most frequent of `,` `;` tab in the header line. Blank lines are
skipped. Quoted cells may span lines; problems still name the physical line (1-based, the
header is line 1) and the column: `people.csv:12:start_date`.

A row that cannot be mapped is reported with the decision of `syncd.sources.salvage`, the
rule every source shares: when its status says disabled or its start or end date cannot be
read, its key goes into `disabled` (the engine disables the person); otherwise, when its
key is readable, into `held` (the engine leaves that person as the ledger has them instead
of treating them as a leaver); without a readable key it is skipped. Two rows with one key
are both reported and neither is applied: the key is disabled if either says disabled,
held otherwise. Such rows count as bad for `max_bad_share`. Cell values are never quoted
by this module (the mapping quotes a bad value only when it is not a PIN). A cell that
cannot be decoded, or is too long, is read by the salvage as unreadable (a date: disabled;
the status: held) and, in a key column, as no key (skipped).
"""

from __future__ import annotations

import codecs
import csv
import itertools
import os
import re
import stat
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from syncd.config import CsvSourceConfig
from syncd.errors import RecordError, SourceError, SourceRefused
from syncd.mapping import FieldError
from syncd.sources.base import RecordMapper, SourceRead
from syncd.sources.csvlines import SKIMMED, BoundedLines, Overlong
from syncd.sources.salvage import Triage, Triaged, key_label

if TYPE_CHECKING:
    from _csv import Reader as CsvReader  # the reader's type, named only in typeshed

_CHUNK = 1 << 16
_DELIMITERS = (",", ";", "\t")
_SHOWN_PROBLEMS = 5
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Decoding with errors="surrogateescape" turns each byte the codec cannot decode into one
# lone surrogate U+DC80..U+DCFF; no valid text decodes to those, so they mark the bytes.
_UNDECODED = re.compile("[\udc80-\udcff]")
_DECODED_NON_ASCII = re.compile("[\x80-\udc7f\udd00-\U0010ffff]")
_UNREADABLE = "\ufffd"  # what the salvage sees of a cell that cannot be trusted
_HEADER_BOUND = 1 << 16
_CODEC_NAMES = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "cp1252": "cp1252"}


def detect_encoding(path: Path) -> str:
    """Return utf-8-sig (BOM), cp1252 (clearly cp1252: see the module doc) or utf-8,
    reading in chunks and stopping as soon as the file shows valid and invalid UTF-8."""
    with path.open("rb") as handle:
        if handle.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8:
            return "utf-8-sig"
        handle.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
        valid = invalid = False
        final = False
        while not final:
            chunk = handle.read(_CHUNK)
            final = not chunk
            text = decoder.decode(chunk, final=final)
            if text.isascii():
                continue
            valid = valid or _DECODED_NON_ASCII.search(text) is not None
            invalid = invalid or _UNDECODED.search(text) is not None
            if valid and invalid:
                break
    return "cp1252" if invalid and not valid else "utf-8"


def sniff_delimiter(line: str) -> str:
    """Return the most frequent of `,` `;` tab in `line` (`,` when none occurs)."""
    counts = {d: line.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def check_file(path: Path, limit: int) -> int:
    """Return the size of the regular file `path`; raise OSError if it cannot be looked at,
    ValueError if it is not a regular file (a pipe would block, a device never end) or
    is larger than `limit` bytes."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise ValueError("not a regular file")
    if info.st_size > limit:
        raise ValueError(f"{info.st_size} bytes, more than max_file_bytes {limit}")
    return info.st_size


def line_of(line: int, cells: list[str], column: int) -> int:
    """Return the physical line of cell `column` of a row starting on `line`.

    Line breaks are counted as the reader counts lines (\r\n, \r or \n), so that the
    number agrees with the row's own.
    """
    return line + sum(len(_LINE_BREAK.findall(cell)) for cell in cells[:column])


class CsvSource:
    """An HR CSV export read completely on every run (no cursor)."""

    def __init__(self, name: str, config: CsvSourceConfig, mapping: RecordMapper) -> None:
        self.name = name
        self._config = config
        self._mapping = mapping
        self._file = config.path.name

    def read(self, *, cursor: str | None = None, full: bool = True) -> SourceRead:
        """Return every person of the file; raise SourceError / SourceRefused (module doc)."""
        path = self._config.path
        try:
            check_file(path, self._config.max_file_bytes)
        except ValueError as exc:
            raise self._refuse(str(exc)) from None
        except OSError as exc:
            raise SourceError(f"{self.name}: cannot read {path}: {exc.strerror}") from None
        try:
            encoding = self._encoding(path)
            with path.open(encoding=encoding, errors="surrogateescape", newline="") as handle:
                triage = self._read_rows(handle, encoding)
        except csv.Error as exc:
            raise self._refuse(f"malformed CSV: {exc}") from None
        except OSError as exc:
            raise SourceError(f"{self.name}: cannot read {path}: {exc.strerror}") from None
        triaged = triage.result()
        self._check_share(triage.records, triaged)
        return SourceRead(
            people=triaged.people,
            problems=triaged.problems,
            complete=True,
            held=triaged.held,
            disabled=triaged.disabled,
        )

    def _encoding(self, path: Path) -> str:
        chosen = self._config.encoding
        if chosen == "auto":
            return detect_encoding(path)
        # utf-8-sig reads files with and without a BOM alike; a stray BOM never ends up in
        # the first column name.
        return "utf-8-sig" if chosen == "utf-8" else chosen

    def _refuse(self, why: str) -> SourceRefused:
        return SourceRefused(f"{self.name}: {self._file}: {why}")

    def check_reach(self) -> str:
        """Open the file and read its header only (`Reachable`): readable, within
        `max_file_bytes`, and naming every column the mapping reads. Return what was
        found; raise SourceError / SourceRefused as `read` would for these."""
        path = self._config.path
        try:
            size = check_file(path, self._config.max_file_bytes)
            encoding = self._encoding(path)
            with path.open(encoding=encoding, errors="surrogateescape", newline="") as handle:
                _, _, _, names, delimiter = self._start(handle, encoding)
        except ValueError as exc:
            raise self._refuse(str(exc)) from None
        except csv.Error as exc:
            raise self._refuse(f"malformed CSV: {exc}") from None
        except OSError as exc:
            raise SourceError(f"{self.name}: cannot read {path}: {exc.strerror}") from None
        shown = "tab" if delimiter == "\t" else repr(delimiter)
        return f"{path}: {size} bytes, {encoding}, delimiter {shown}, {len(names)} columns"

    def _start(
        self, handle: TextIO, encoding: str
    ) -> tuple[BoundedLines, CsvReader, int, list[str], str]:
        """Read up to the header: return (lines, the csv reader, blank lines before the
        header, column names, delimiter); refuse an empty file or a bad header."""
        encoding = "utf-8" if encoding == "utf-8-sig" else encoding  # to count bytes: no BOM
        lines = BoundedLines(handle, _HEADER_BOUND, self._config.max_file_bytes)
        blank = 0  # blank lines before the header still count in line numbers
        try:
            for first in lines:
                if first.strip():
                    break
                blank += 1
            else:
                raise self._refuse("the file is empty")
        except Overlong as exc:
            raise self._refuse(f"line {blank + 1}: {exc}") from None
        delimiter: str = self._config.delimiter
        if delimiter == "auto":
            delimiter = sniff_delimiter(first)
        # strict: an unclosed quote must refuse the file, not swallow the rows after it.
        reader = csv.reader(itertools.chain([first], lines), delimiter=delimiter, strict=True)
        names = self._header(next(reader), blank + 1, encoding)
        return lines, reader, blank, names, delimiter

    def _read_rows(self, handle: TextIO, encoding: str) -> Triage:
        lines, reader, blank, names, delimiter = self._start(handle, encoding)
        encoding = "utf-8" if encoding == "utf-8-sig" else encoding  # to count bytes: no BOM
        lines.rows(delimiter, self._config.max_cell_bytes * (len(names) + 1))
        lines.next_record()
        # The reader's own cell limit (128 Ki characters by default) would refuse the whole
        # file unnamed; cells are bounded by `lines` and checked per row instead. The limit
        # is process-wide, so it is only ever raised.
        csv.field_size_limit(max(csv.field_size_limit(), lines.cap + lines.bound))
        triage = Triage(self.name, key_label(self._mapping.key_attributes), self._place)
        take = self._take  # bound once: this loop runs once a row
        max_cell = self._config.max_cell_bytes
        end = reader.line_num
        try:
            for cells in reader:
                line, end = end + 1 + blank, reader.line_num
                if lines.next_record():
                    self._skimmed(line, cells, names, lines.bound, triage)
                    continue
                joined = "".join(cells)
                if (not cells or not cells[0].strip()) and not joined.strip():
                    continue  # a blank line, or a row of empty cells
                # The common row is ASCII and short: one check; only others are looked into.
                ascii_short = joined.isascii() and len(joined) <= max_cell
                if not ascii_short and self._bad_cells(line, cells, names, encoding, triage):
                    continue
                take(line, cells, names, triage)
        except Overlong as exc:
            raise self._refuse(f"line {end + 1 + blank}: {exc}") from None
        if triage.records == 0:
            raise self._refuse("no data rows after the header")
        return triage

    def _header(self, header: list[str], line: int, encoding: str) -> list[str]:
        """Return the column names, spelled as the mapping spells them; refuse a bad header.

        The mapping looks attributes up exactly first, so matching its spelling here keeps
        every lookup of every row on the fast path.
        """
        for cell in header:
            if bad := _UNDECODED.search(cell):
                at = len(cell[: bad.start()].encode(encoding, "surrogateescape"))
                raise self._refuse(
                    f"line {line}: the header is not valid {_CODEC_NAMES[encoding]} "
                    f"(byte {at} of a column name); is the encoding right?"
                )
        spelling = {name.casefold(): name for name in self._mapping.attributes}
        names: list[str] = []
        for raw_name in header:
            name = raw_name.strip().lstrip("\ufeff").strip()
            if name and name.casefold() in (n.casefold() for n in names):
                raise self._refuse(f"the header names column {name!r} twice")
            names.append(spelling.get(name.casefold(), name))
        missing = sorted(set(spelling.values()) - set(names), key=str.casefold)
        if missing:
            raise self._refuse(
                f"the header lacks the column(s) {', '.join(missing)} that the mapping reads "
                "(is the header line missing, or the delimiter or encoding wrong?)"
            )
        return names

    def _take(self, line: int, cells: list[str], names: list[str], triage: Triage) -> None:
        """Map one row into `triage`, or hand it over as defective with what it still tells."""
        raw = dict(zip(names, cells, strict=False))
        if len(cells) != len(names) and _bad_width(cells, len(names)):
            message = f"{len(cells)} columns where the header has {len(names)}"
            where = self._where(line, "")
            triage.defective(line, self._mapping.salvage(raw), where, "(row)", message)
            return
        try:
            person = self._mapping.map(raw)
        except RecordError as exc:
            column = exc.attribute if isinstance(exc, FieldError) else None
            at = line_of(line, cells, names.index(column)) if column in names else line
            where = self._where(at, column or "")
            triage.defective(line, self._mapping.salvage(raw), where, exc.field, exc.message)
        else:
            triage.mapped(person, line)

    def _bad_cells(
        self, line: int, cells: list[str], names: list[str], encoding: str, triage: Triage
    ) -> bool:
        """Hand the row over as defective if a cell cannot be decoded or passes
        max_cell_bytes (in the file's bytes); return True if it did."""
        limit = self._config.max_cell_bytes
        joined = "".join(cells)
        if _UNDECODED.search(joined) is None and len(joined) * 4 <= limit:
            return False
        problems: list[tuple[int, str]] = []
        for index, cell in enumerate(cells):
            if bad := _UNDECODED.search(cell):
                at = len(cell[: bad.start()].encode(encoding, "surrogateescape"))
                problems.append(
                    (index, f"not valid {_CODEC_NAMES[encoding]} at byte {at} of the cell")
                )
                continue
            size = len(cell) if cell.isascii() else len(cell.encode(encoding, "surrogateescape"))
            if size > limit:
                problems.append((index, f"{size} bytes, more than max_cell_bytes {limit}"))
        if not problems:
            return False
        self._untrusted(line, cells, names, problems, triage)
        return True

    def _skimmed(
        self, line: int, cells: list[str], names: list[str], bound: int, triage: Triage
    ) -> None:
        """Hand over a row too long to read (`csvlines`), named by the cell where it went over."""
        message = (
            f"the row passes {bound} characters (max_cell_bytes per column) in this cell; "
            "it was skipped over, not read"
        )
        problems = [(index, message) for index, cell in enumerate(cells) if SKIMMED in cell]
        self._untrusted(line, cells, names, problems or [(-1, message)], triage)

    def _untrusted(
        self,
        line: int,
        cells: list[str],
        names: list[str],
        problems: list[tuple[int, str]],
        triage: Triage,
    ) -> None:
        """Hand the row over as defective, naming its first untrusted cell of `problems`
        (index, message). The salvage sees every untrusted cell as unreadable, and a row
        with an untrusted key cell as one without a readable key."""
        raw = dict(zip(names, cells, strict=False))
        keys = self._mapping.key_attributes
        keyless = False
        for index, _ in problems:
            if 0 <= index < len(names):
                name = names[index]
                keyless = keyless or name in keys
                raw[name] = "" if name in keys else _UNREADABLE
        key, says, unreadable = self._mapping.salvage(raw)
        index, message = problems[0]
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more cell(s))"
        if index < 0:
            where = self._where(line, "")
        else:
            column = names[index] if index < len(names) else f"column {index + 1}"
            where = self._where(line_of(line, cells, index), column)
        salvaged = (None if keyless else key, says, unreadable)
        triage.defective(line, salvaged, where, "(row)" if index < 0 else "(cell)", message)

    def _where(self, line: Hashable, column: str) -> str:
        return f"{self._file}:{line}:{column}" if column else f"{self._file}:{line}"

    def _place(self, line: Hashable) -> tuple[str, str]:
        """Where a duplicate-key problem of the row starting on `line` points, and its name."""
        return self._where(line, ", ".join(self._mapping.key_attributes)), f"line {line}"

    def _check_share(self, rows: int, triaged: Triaged) -> None:
        """Refuse the read if too many of its `rows` (disabled ones too) could not be used."""
        bad = rows - len(triaged.people)
        share = bad / rows
        if not triaged.people or share > self._config.max_bad_share:
            shown = "; ".join(str(p) for p in triaged.problems[:_SHOWN_PROBLEMS])
            raise self._refuse(
                f"{bad} of {rows} rows ({share:.1%}) could not be used, more than "
                f"max_bad_share {self._config.max_bad_share:.1%}; first problems: {shown}"
            )


def _bad_width(cells: list[str], width: int) -> bool:
    """True unless `cells` is `width` cells plus empty ones (a spreadsheet's stray delimiters)."""
    return len(cells) < width or any(cell.strip() for cell in cells[width:])
