"""The HR CSV export as a source of truth: always a complete read, streamed row by row.

`CsvSource(name, config, mapping).read()` returns every person of the file, or raises:

- `SourceError` when the file cannot be opened;
- `SourceRefused` when its answer cannot be trusted: empty file, no data rows, a header
  that lacks a column the mapping reads (or names one twice), text that is not in the
  configured encoding, malformed quoting, or more bad rows than `max_bad_share`.

Encoding `auto`: a UTF-8 BOM → utf-8-sig, valid UTF-8 → utf-8, anything else → cp1252.
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
by this module (the mapping quotes a bad value only when it is not a PIN).
"""

from __future__ import annotations

import codecs
import csv
import itertools
import re
from collections.abc import Hashable
from pathlib import Path
from typing import TextIO

from syncd.config import CsvSourceConfig
from syncd.errors import RecordError, SourceError, SourceRefused
from syncd.gcpause import gc_paused
from syncd.mapping import FieldError
from syncd.sources.base import RecordMapper, SourceRead
from syncd.sources.salvage import Triage, Triaged, key_label

_CHUNK = 1 << 16
_DELIMITERS = (",", ";", "\t")
_SHOWN_PROBLEMS = 5
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def detect_encoding(path: Path) -> str:
    """Return utf-8-sig (BOM), utf-8 (the whole file decodes) or cp1252, reading in chunks."""
    with path.open("rb") as handle:
        if handle.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8:
            return "utf-8-sig"
        handle.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while chunk := handle.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp1252"
    return "utf-8"


def sniff_delimiter(line: str) -> str:
    """Return the most frequent of `,` `;` tab in `line` (`,` when none occurs)."""
    counts = {d: line.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


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
            encoding = self._encoding(path)
            with path.open(encoding=encoding, newline="") as handle, gc_paused():
                triage = self._read_rows(handle)
        except UnicodeDecodeError as exc:
            raise self._refuse(f"not {encoding} text (byte {exc.start} of a chunk)") from None
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

    def _read_rows(self, handle: TextIO) -> Triage:
        blank = 0  # blank lines before the header still count in line numbers
        for first in handle:
            if first.strip():
                break
            blank += 1
        else:
            raise self._refuse("the file is empty")
        delimiter: str = self._config.delimiter
        if delimiter == "auto":
            delimiter = sniff_delimiter(first)
        # strict: an unclosed quote must refuse the file, not swallow the rows after it.
        reader = csv.reader(itertools.chain([first], handle), delimiter=delimiter, strict=True)
        names = self._header(next(reader))
        triage = Triage(self.name, key_label(self._mapping.key_attributes), self._place)
        take = self._take  # bound once: this loop runs once a row
        end = reader.line_num
        for cells in reader:
            line, end = end + 1 + blank, reader.line_num
            if (not cells or not cells[0].strip()) and not "".join(cells).strip():
                continue  # a blank line, or a row of empty cells
            take(line, cells, names, triage)
        if triage.records == 0:
            raise self._refuse("no data rows after the header")
        return triage

    def _header(self, header: list[str]) -> list[str]:
        """Return the column names, spelled as the mapping spells them; refuse a bad header.

        The mapping looks attributes up exactly first, so matching its spelling here keeps
        every lookup of every row on the fast path.
        """
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
