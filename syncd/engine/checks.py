"""`syncd validate`: check a configuration, and optionally reach every system, before a run.

Each check is one `Check`: what was checked (a setting's path where there is one), ok or
not, and one line of detail. A detail never holds a secret's value: a secret is named
by its setting and where it lives (`file /etc/syncd/clue-api-key`), never shown.

In order:
1. the config file parses and matches the schema;
2. each source's mapping compiles;
3. each secret the config names is readable and not empty (file, environment variable,
   systemd credential) — a CLUe key file missing is found here, not by 100 failed actions;
4. the ledger is reachable and at the schema this syncd needs (the revision is read;
   nothing is migrated, a SQLite file that does not exist is not made);
5. the template key and the PIN key, if any, open what the ledger holds (no key file is
   made).
With `connect` (`--connect`), also, read-only:
6. each source: LDAP bind and a search for one entry; a CSV file's header;
7. each target: what its `Reachable.check_reach` does (EF-45: `GET /version`, no lock
   taken; CLUe: the API key accepted and one auth read).

`exit_code` gives the code of the first failing class, in the order config (3), ledger
(5), source (4), target (8); 0 when all pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from pydantic import BaseModel

from syncd.config import Config, SecretRef, load_config
from syncd.engine.enrollments import open_vault
from syncd.engine.factory import build_sources, build_targets
from syncd.errors import (
    ConfigError,
    LedgerError,
    SourceError,
    SyncdError,
    TargetError,
    cut,
    environmental,
)
from syncd.ledger import migrate
from syncd.ledger.files import sqlite_path
from syncd.ledger.lockmemo import LedgerLockMemo
from syncd.ledger.pinkey import check_pin_key
from syncd.ledger.store import Ledger, create_ledger_engine
from syncd.mapping import load_mapping
from syncd.sources.base import Reachable as ReachableSource
from syncd.targets.base import Reachable

if TYPE_CHECKING:
    import httpx

    from syncd.sources.base import Source

CONFIG = ConfigError.exit_code
LEDGER = LedgerError.exit_code
SOURCE = SourceError.exit_code
TARGET = TargetError.exit_code
ORDER = (CONFIG, LEDGER, SOURCE, TARGET)
"""Failure classes in the order `exit_code` ranks them."""


@dataclass(frozen=True, slots=True)
class Check:
    """One check: `subject` (what, where), passed or not, one line of detail, and the
    exit code its failure stands for."""

    subject: str
    ok: bool
    detail: str
    code: int = CONFIG

    def line(self) -> str:
        """Return the check as `ok   subject: detail` or `FAIL subject: detail`."""
        return f"{'ok  ' if self.ok else 'FAIL'} {self.subject}: {self.detail}"


def exit_code(checks: Sequence[Check]) -> int:
    """Return 0 if every check passed, else the code of the first failing class (ORDER)."""
    failed = {c.code for c in checks if not c.ok}
    return next((code for code in ORDER if code in failed), min(failed, default=0))


def validate(
    path: Path | None,
    *,
    connect: bool = False,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> Iterator[Check]:
    """Yield every check of the configuration at `path` (None: $SYNCD_CONFIG or
    ./syncd.toml) as it is made; with `connect`, reach every source and target too.
    `transports` routes a target's HTTP (tests)."""
    try:
        config = load_config(path)
    except ConfigError as error:
        yield Check("config", False, str(error))
        return
    yield Check("config", True, f"{len(config.sources)} source(s), {len(config.targets)} target(s)")
    compiled = yield from check_mappings(config)
    yield from check_secrets(config)
    ledger = yield from check_ledger(config)
    try:
        if ledger is not None:
            yield from check_keys(config, ledger.db)
        if connect:
            yield from reach_sources(config, compiled)
            yield from reach_targets(config, ledger, transports)
    finally:
        if ledger is not None:
            ledger.close()


def check_mappings(config: Config) -> Generator[Check, None, set[str]]:
    """Yield one check per source's mapping; return the names whose mapping compiled."""
    compiled: set[str] = set()
    for name, source in config.sources.items():
        subject = f"sources.{name}.mapping"
        try:
            load_mapping(source.mapping)
        except ConfigError as error:
            yield Check(subject, False, str(error))
            continue
        compiled.add(name)
        yield Check(subject, True, f"{source.mapping} compiles")
    return compiled


def secret_refs(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, SecretRef]]:
    """Yield (setting path, reference) for every secret a configuration names, at any
    depth (so a secret a later version adds is checked without a change here)."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        where = f"{prefix}{name}"
        if isinstance(value, SecretRef):
            yield where, value
        elif isinstance(value, BaseModel):
            yield from secret_refs(value, f"{where}.")
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, BaseModel):
                    yield from secret_refs(item, f"{where}.{key}.")


def check_secrets(config: Config) -> Iterator[Check]:
    """Yield one check per secret: readable and not empty (its value is never shown)."""
    for where, ref in secret_refs(config):
        lives = _where_it_lives(ref)
        try:
            value = ref.read(where)
        except ConfigError as error:
            yield Check(where, False, str(error))
            continue
        if not value.strip():
            yield Check(where, False, f"{lives} is empty")
        else:
            yield Check(where, True, f"{lives} readable")


def _where_it_lives(ref: SecretRef) -> str:
    if ref.file is not None:
        return f"file {ref.file}"
    if ref.env is not None:
        return f"environment variable {ref.env}"
    return f"credential {ref.credential}"


def check_ledger(config: Config) -> Generator[Check, None, Ledger | None]:
    """Yield the ledger's check: reachable and at the head revision (read, never
    migrated); return the Ledger when it is usable (the caller closes it), else None."""
    url = config.ledger.url
    path = sqlite_path(url)
    if path is not None and not path.exists():
        yield Check("ledger", False, f"{path} does not exist: run `syncd db upgrade`", LEDGER)
        return None
    try:
        engine = create_ledger_engine(url)
    except ConfigError as error:
        yield Check("ledger.url", False, str(error))
        return None
    try:
        current = migrate.current_revision(engine)
        head = migrate.head_revision()
    except (LedgerError, sa.exc.SQLAlchemyError) as error:
        engine.dispose()
        yield Check("ledger", False, _fault_text(error, "ledger unreachable"), LEDGER)
        return None
    shown = _shown_url(engine)
    if current != head:
        engine.dispose()
        at = current or "empty"
        detail = f"{shown}: schema at {at}, this syncd needs {head}: run `syncd db upgrade`"
        yield Check("ledger", False, detail, LEDGER)
        return None
    yield Check("ledger", True, f"{shown}: reachable, schema at {head} (current)", LEDGER)
    return Ledger(engine)


def _shown_url(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def check_keys(config: Config, engine: sa.Engine) -> Iterator[Check]:
    """Yield the checks of the template key (if configured, or templates are held) and
    of the PIN key, against what the ledger holds; nothing is written."""
    keyed: list[tuple[str, Callable[[], str]]] = [
        ("templates.key", lambda: _vault_line(config, engine)),
        ("PIN key", lambda: check_pin_key(config, engine)),
    ]
    for subject, check in keyed:
        try:
            detail = check()
        except SyncdError as error:
            yield Check(subject, False, str(error), _class_of(error))
            continue
        yield Check(subject, True, detail)


def _vault_line(config: Config, engine: sa.Engine) -> str:
    vault = open_vault(config, engine)
    return "no [templates] key (none needed)" if vault is None else "opens the ledger's templates"


def reach_sources(config: Config, compiled: set[str]) -> Iterator[Check]:
    """Yield one check per source whose mapping compiled: reached read-only."""
    usable = config.model_copy(
        update={"sources": {n: s for n, s in config.sources.items() if n in compiled}}
    )
    sources: dict[str, Source] = build_sources(usable)
    for name, source in sources.items():
        subject = f"source {name}"
        if not isinstance(source, ReachableSource):
            yield Check(subject, True, "cannot be checked without reading it (not reached)")
            continue
        try:
            yield Check(subject, True, source.check_reach(), SOURCE)
        except SyncdError as error:
            yield Check(subject, False, str(error), _class_of(error, SOURCE))


def reach_targets(
    config: Config,
    ledger: Ledger | None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None,
) -> Iterator[Check]:
    """Yield one check per target: reached read-only (`Reachable`), all at once."""
    checks: dict[str, Check] = {}
    reachable: dict[str, Reachable] = {}
    for name in config.targets:
        try:
            target = build_targets(
                config,
                only=frozenset({name}),
                transports=transports,
                lock_memos=(lambda n: LedgerLockMemo(ledger, n)) if ledger else None,
            )[name]
        except ConfigError as error:
            checks[name] = Check(f"target {name}", False, str(error))
            continue
        if isinstance(target, Reachable):
            reachable[name] = target
        else:
            checks[name] = Check(f"target {name}", True, "no read-only check (not reached)")
    checks.update(asyncio.run(_reach_all(reachable)))
    for name in config.targets:
        yield checks[name]


async def _reach_all(targets: Mapping[str, Reachable]) -> dict[str, Check]:
    async def one(name: str, target: Reachable) -> Check:
        subject = f"target {name}"
        try:
            return Check(subject, True, await target.check_reach(), TARGET)
        except Exception as error:  # a fault becomes a line of the report; a bug goes on
            fault = error if isinstance(error, SyncdError) else environmental(error)
            if fault is None:
                raise
            return Check(subject, False, str(fault), _class_of(fault, TARGET))

    results = await asyncio.gather(*(one(n, t) for n, t in targets.items()))
    return dict(zip(targets, results, strict=True))


def _class_of(error: SyncdError, default: int = CONFIG) -> int:
    """Return the failure class (ORDER) of `error`, else `default`."""
    return error.exit_code if error.exit_code in ORDER else default


def _fault_text(error: BaseException, what: str) -> str:
    if isinstance(error, SyncdError):
        return str(error)
    fault = environmental(error)
    return str(fault) if fault is not None else cut(f"{what}: {type(error).__name__}: {error}")
