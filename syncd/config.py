"""syncd.toml: the schema (pydantic, extra keys forbidden), loading, and secrets.

`load_config(path)` returns a validated `Config` or raises `ConfigError` listing every
problem at once, each with its dotted path (`targets.lobby.url: Field required`); a key
the schema does not know reads "unknown key", with a hint at the closest known key.
Relative paths in the file (the CSV, the mapping, a SQLite ledger) are resolved against
the directory of the config file, so a config works from any working directory.

Secrets never live in the TOML: a `SecretRef` names a file, an environment variable or a
systemd credential (`$CREDENTIALS_DIRECTORY/NAME`), read only when needed. A secret file
that group or others may access is refused (`check_private_file`); systemd sets its
credentials' modes itself, so those are taken as they are. Every secret file is read
through `read_secret_file`: a regular file of at most `MAX_SECRET_BYTES` in UTF-8, never
more (a device, a pipe or a huge file is refused before it is read). A credential name
must match `CREDENTIAL_NAME` and resolve inside `$CREDENTIALS_DIRECTORY`.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tomllib
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from syncd.errors import ConfigError

CONFIG_ENV = "SYNCD_CONFIG"
_PACKAGE = Path(__file__).resolve().parent
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_SECRET_BYTES = 64 * 1024
"""A secret file (a password, an API key, a base64 key) is a few hundred bytes at most;
more is a wrong path (a log, a device), refused before it fills memory."""
CREDENTIAL_NAME = re.compile(r"[\w.-]+")
"""A systemd credential name: one path component, no "/" (so never outside the directory)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Strict):
    """Where a secret lives: exactly one of a file, an environment variable, a credential."""

    file: Path | None = None
    env: str | None = None
    credential: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if sum(v is not None for v in (self.file, self.env, self.credential)) != 1:
            raise ValueError("give exactly one of file, env, credential")
        return self

    @field_validator("credential")
    @classmethod
    def _credential_name(cls, name: str | None) -> str | None:
        if name is not None:
            check_credential_name(name)
        return name

    def read(self, where: str = "secret") -> str:
        """Return the secret's text without its trailing newline; raise ConfigError, naming
        `where` (the setting: "ledger.pin_key"), if it is absent, not a private regular
        file of at most MAX_SECRET_BYTES, or not UTF-8 text."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigError(f"{where}: environment variable {self.env} is not set")
            return value
        if self.file is not None:
            path = self.file
            check_private_file(path, where)
        else:
            path = credential_path(str(self.credential), where)
        return read_secret_file(path, where).rstrip("\r\n")


def check_credential_name(name: str) -> None:
    """Raise ValueError unless `name` is a plain credential name (`^[\\w.-]+$`, not "." or
    "..": a name can never reach outside `$CREDENTIALS_DIRECTORY`)."""
    if not CREDENTIAL_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(
            f"credential name {name!r} is not a plain name (letters, digits, "
            "'_', '.', '-'; not '.' or '..')"
        )


def credential_path(name: str, where: str = "secret") -> Path:
    """Return `$CREDENTIALS_DIRECTORY/name`, resolved; raise ConfigError if the name is not a
    plain name, the variable is unset, or the path (after symlinks) leaves the directory."""
    try:
        check_credential_name(name)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ConfigError(f"{where}: credential {name!r} needs CREDENTIALS_DIRECTORY (systemd)")
    base = Path(directory).resolve()
    path = (base / name).resolve()
    if not path.is_relative_to(base):
        raise ConfigError(f"{where}: credential {name!r} leads outside CREDENTIALS_DIRECTORY")
    return path


def read_secret_file(path: Path, where: str = "secret", limit: int = MAX_SECRET_BYTES) -> str:
    """Return the UTF-8 text of the regular file `path`, reading at most `limit` + 1 bytes.

    Raise ConfigError naming `where`, the file and the limit if the file is missing, not a
    regular file (a device such as /dev/zero, a pipe that would block, a directory), larger
    than `limit` bytes, or not UTF-8. The file is opened without blocking and checked on
    the open descriptor, so it cannot be swapped for a pipe between check and read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{where}: {path} is not a regular file")
        if info.st_size > limit:
            raise ConfigError(
                f"{where}: {path} has {info.st_size} bytes, more than a secret's {limit}"
            )
        data = _read_at_most(fd, limit + 1)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limit:  # grown since fstat
        raise ConfigError(f"{where}: {path} has more than a secret's {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: {path} is not UTF-8 text") from None


def _read_at_most(fd: int, count: int) -> bytes:
    """Read from `fd` until end of file or `count` bytes, whichever comes first."""
    chunks: list[bytes] = []
    left = count
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def check_private_file(path: Path, what: str = "secret") -> None:
    """Raise ConfigError, naming the file and the fix, if `path` is a regular file group or
    others may access (a missing file, a pipe or a device passes: the read tells)."""
    try:
        info = path.stat()
    except OSError:
        return
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISREG(info.st_mode) and mode & 0o077:
        raise ConfigError(
            f"{what}: {path} is readable by group or others (mode {mode:04o}); "
            f"make it private to syncd's user: chmod 600 {path}"
        )


def shipped_path(*parts: str) -> Path:
    """Return a file shipped with syncd (`migrations/…`, `mappings/…`).

    A built wheel carries them under `syncd/_data/`; an editable install or a checkout
    has them at the repository's top. Raise ConfigError if neither has it.
    """
    for base in (_PACKAGE / "_data", _PACKAGE.parent):
        candidate = base.joinpath(*parts)
        if candidate.exists():
            return candidate
    raise ConfigError(f"{'/'.join(parts)} is missing from this installation of syncd")


BUILTIN = "builtin:"
"""Prefix of a mapping shipped with syncd: `mapping = "builtin:hr-csv"`."""


def builtin_mappings() -> list[str]:
    """Return the names of the mappings shipped with syncd (`hr-csv`, ...), sorted."""
    return sorted(path.stem for path in shipped_path("mappings").glob("*.toml"))


def resolve_mapping(mapping: Path, base: Path, setting: str) -> Path:
    """Return the file a source's `mapping` names: `builtin:NAME` is the mapping shipped
    with syncd (in the installed package, so `pip install .` is enough), anything else a
    path, relative ones under `base`. Raise ConfigError naming `setting` and the known
    names for an unknown built-in."""
    text = str(mapping)
    if not text.startswith(BUILTIN):
        return base / mapping
    name = text.removeprefix(BUILTIN)
    known = builtin_mappings()
    if name not in known:
        names = ", ".join(BUILTIN + known_name for known_name in known)
        raise ConfigError(f"{setting}: unknown built-in mapping {text!r} (known: {names})")
    return shipped_path("mappings", f"{name}.toml")


class LedgerConfig(_Strict):
    """Where the ledger lives (SQLAlchemy URL: SQLite file or PostgreSQL) and the key of its
    PINs (`ledger.pinkey`): `pin_key`, else a subkey of the `[templates]` key, else the
    file `pin.key` made in `state_directory` (unset: `$STATE_DIRECTORY`, else the SQLite
    ledger's directory, else the config file's)."""

    url: str = "sqlite:///ledger.db"
    pin_key: SecretRef | None = None
    state_directory: Path | None = None


class SafetyConfig(_Strict):
    """Caps and grace periods that keep a wrong run from locking people out or letting them in."""

    max_deletes: int = Field(default=50, ge=0)
    max_delete_share: float = Field(default=0.10, ge=0.0, le=1.0)
    # Removals over a rolling window (engine.safety): at most this many, and this share
    # of the people with access at the window's start, in `delete_window_h` (0: off).
    delete_window_h: float = Field(default=24.0, ge=0, le=744)
    max_window_deletes: int = Field(default=100, ge=0)
    max_window_delete_share: float = Field(default=0.20, ge=0.0, le=1.0)
    delete_after_days: int = Field(default=30, ge=0)
    protected_keys: tuple[str, ...] = ()
    max_source_shrink: float = Field(default=0.20, ge=0.0, le=1.0)


class AccessConfig(_Strict):
    """When people may pass, as syncd decides it (README, "Who may pass, and when").

    `create_ahead_days`: an upcoming hire is created on the targets this many days before
    their start, with access off, so they can enroll before day one (0: on the day).
    `time_zone`: the site's zone, in which reports show the times access opens and closes.
    `upcoming_days`: how far ahead `syncd plan` lists those times. `boundary_grace_s`: the
    daemon's reconcile at a boundary starts this long after it (clock skew margin).
    """

    create_ahead_days: float = Field(default=14.0, ge=0, le=366)
    time_zone: str = "UTC"
    upcoming_days: float = Field(default=7.0, ge=0, le=366)
    boundary_grace_s: float = Field(default=1.0, ge=0, le=50)

    @model_validator(mode="after")
    def _known_zone(self) -> AccessConfig:
        _check_zone(self.time_zone)
        return self


def _check_zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name: Europe/Berlin)") from None


class ApplyConfig(_Strict):
    """How apply retries: within a run (bounded backoff), then across runs; how long an
    action (all its tries) and a target (all its actions) may take in one run; how long a
    stopped apply waits for its terminal locks to be released."""

    retries: int = Field(default=3, ge=0, le=20)
    retry_initial_s: float = Field(default=0.5, ge=0)
    retry_max_s: float = Field(default=5.0, ge=0)
    next_attempt_base_s: float = Field(default=60.0, ge=0)
    next_attempt_max_s: float = Field(default=3600.0, ge=0)
    quarantine_after: int = Field(default=5, ge=1)
    quarantine_retry_s: float = Field(default=3600.0, ge=0)
    action_deadline_s: float = Field(default=120.0, gt=0)
    target_deadline_s: float = Field(default=1800.0, gt=0)
    release_timeout_s: float = Field(default=5.0, gt=0)


class CsvSourceConfig(_Strict):
    """An HR system's CSV export."""

    type: Literal["csv"]
    path: Path
    mapping: Path
    encoding: Literal["auto", "utf-8", "utf-8-sig", "cp1252"] = "auto"
    delimiter: Literal["auto", ",", ";", "\t"] = "auto"
    max_bad_share: float = Field(default=0.05, ge=0.0, le=1.0)
    # A larger file is refused unread; a larger cell makes its row a named bad row.
    max_file_bytes: int = Field(default=512 * 1024**2, ge=1)
    max_cell_bytes: int = Field(default=128 * 1024, ge=16)


class LdapSourceConfig(_Strict):
    """An LDAP directory: Active Directory (`flavor = "ad"`) or OpenLDAP (`"openldap"`)."""

    type: Literal["ldap"]
    url: str = Field(pattern=r"^ldaps?://")
    flavor: Literal["ad", "openldap"] = "openldap"
    start_tls: bool = False
    ca_file: Path | None = None
    verify_tls: bool = True
    # Another name the server's certificate may carry, for a url that gives an address
    # or an alias (a DC's certificate often names only its FQDN).
    tls_server_name: str = ""
    bind_dn: str = ""
    password: SecretRef | None = None
    base_dn: str
    filter: str = "(objectClass=person)"
    scope: Literal["base", "one", "sub"] = "sub"
    attributes: tuple[str, ...] = ()
    page_size: int = Field(default=500, ge=1, le=100_000)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    read_timeout_s: float = Field(default=30.0, gt=0)
    # Active Directory only: a `member_of` access rule also matches people in groups
    # nested inside the named group, at any depth (LDAP_MATCHING_RULE_IN_CHAIN).
    nested_groups: bool = False
    # Hours between full reads (which also find deletions); reads in between are deltas.
    # 0 makes every read full.
    full_read_every_h: float = Field(default=24.0, ge=0)
    mapping: Path

    @model_validator(mode="after")
    def _nested_groups_need_ad(self) -> LdapSourceConfig:
        if self.nested_groups and self.flavor != "ad":
            raise ValueError('nested_groups needs flavor = "ad" (OpenLDAP has no in-chain rule)')
        return self


SourceConfig = Annotated[CsvSourceConfig | LdapSourceConfig, Field(discriminator="type")]


class Ef45TargetConfig(_Strict):
    """One CMITECH EF-45 terminal (one door). `groups` empty means everyone."""

    type: Literal["ef45"]
    url: str = Field(pattern=r"^https?://")
    groups: tuple[str, ...] = ()
    timeout_s: float = Field(default=10.0, gt=0)
    ca_file: Path | None = None
    """For an `https://` terminal: the PEM file its certificate (usually self-signed) is
    verified against. Unset: the system's trust store. Verification is never off."""
    steal_lock: bool = False
    """Take the lock from whoever holds it (`PUT /lock`), e.g. an operator enrolling at
    the vendor software. Off: a lock held by anyone else is never taken."""
    lock_wait_s: float = Field(default=30.0, ge=0, le=3600)
    """After an unanswered lock request of syncd's (which the device may still grant, to
    nobody), how long the next session waits for the lock to come free before LockBusy."""
    lost_lock_statuses: tuple[int, ...] = Field(default=(401, 403, 423), min_length=1)
    """Statuses of a locked call that mean "the device forgot the lock" (retaken once).
    *Unverified* on real hardware: `syncd probe` checks it."""
    batch_min_version: str = "1.3.0"
    page_size: int = Field(default=50, ge=1, le=1000)
    time_zone: str = "UTC"
    orphans: Literal["report", "delete"] = "report"
    """Users on the terminal the ledger never created (seen by a deep run): report only,
    or delete them too (within the removal caps)."""
    delete_logs_after_collect: bool = False
    """`syncd events collect` deletes the logs it stored from the terminal (off: never)."""
    record_version: int | None = None
    """The terminal's template algorithm (`GET /subjects/record-version`); templates of
    another record version are never sent to it. Unset: the origin's is assumed and the
    session's is checked at apply."""
    face_sub_id_param: str = Field(default="subId", pattern=r"^[A-Za-z_]+$")
    """The query parameter naming a face on `/faces/{uuid}`: the vendor SDK's `subId`; the
    REST reference says `sub_id` (`syncd probe` tells which the firmware reads)."""
    card_bytes: int = Field(default=4, ge=0, le=16)
    """Cards are written as this many hex bytes (`00 AB CD EF`: a top byte 00 is kept);
    0 writes as few bytes as the number needs."""
    image_dir: str = Field(default="/usr/local/share/CMITECH/Images", pattern=r"^/")
    """The terminal's image directory: `load-file` is asked for `<image_dir>/<name>`."""
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024, le=1024**3)
    """The largest answer body read from the terminal (8 MiB); past it the request fails
    (Ef45Unavailable), whatever the terminal announces or streams."""
    max_list_body_bytes: int = Field(default=64 * 1024 * 1024, ge=64 * 1024, le=4 * 1024**3)
    """The largest page of a list read (64 MiB): a page of subjects or faces carries
    templates (some kilobytes each; `page_size` of them)."""
    max_pages: int = Field(default=10_000, ge=1, le=10_000_000)
    """The most pages one list may take, whatever the terminal claims (with `page_size`
    50: 500 000 users); a list also stops one page past what its reported total implies."""


CLUE_EVENTS_PATH = "/v1/be/events"
"""The events query of the CLUe quick start: the only one whose parameters and answer are
documented. A newer guide points logs at `/v1/audit-logs` (*unverified*: neither its
parameters nor its answer are shown), so that is not the default."""


class ClueTargetConfig(_Strict):
    """One Suprema CLUe place. Paths the public guide does not show are configurable.

    Paths: `api_base` ("/v1", the newer guide's `/v1/places/{place_id}/auths`, or
    "/v1/be", the older quick start's) decides the auth paths unless `auth_path` /
    `auth_item_path` name them outright (`clue_auth_paths`). `events_path` does not
    follow `api_base` (see CLUE_EVENTS_PATH).
    """

    type: Literal["clue"]
    url: str = Field(default="https://api.moon.supremainc.com", pattern=r"^https?://")
    place_id: int
    api_key: SecretRef
    ca_file: Path | None = None
    groups: tuple[str, ...] = ()
    timeout_s: float = Field(default=15.0, gt=0)
    min_interval_ms: int = Field(default=300, ge=0)
    time_zone: str = "UTC"
    far_future: str = "2099-12-31T23:59:59"
    card_format: str = "CSN"
    api_base: str = Field(default="/v1", pattern=r"^/[^?#{}]*[^/?#{}]$")
    """The path the auth paths hang off: "/v1" (newer guide) or "/v1/be" (older)."""
    auth_path: str | None = Field(default=None, pattern=r"^/.*\{place_id\}")
    """The auths collection; unset: `{api_base}/places/{place_id}/auths`."""
    auth_item_path: str | None = Field(default=None, pattern=r"^/.*\{auth_id\}")
    """One auth; unset: `{auth_path}/{auth_id}` (*unverified*: not in the guide)."""
    events_path: str = Field(default=CLUE_EVENTS_PATH, pattern=r"^/")
    doors: dict[str, tuple[int, ...]] = Field(default_factory=dict)
    """Person group → CLUe door ids (`{lab = [234, 235]}`). Empty: every door (ALL_DOOR);
    else a person gets the doors of all their groups, and one with none is not pushed."""
    schedule_id: int | None = None
    """A CLUe schedule every auth uses (SPECIFIC); unset: ALWAYS."""
    events_lookback_days: int = Field(default=7, ge=1, le=366)
    """How far back the first `syncd events collect` of this place reads."""
    events_overlap_s: int = Field(default=3600, ge=0, le=7 * 24 * 3600)
    """Each collect reads again this far before the newest event it stored: a device
    that was offline uploads its events late, with their own (earlier) times. Events are
    stored once by `logId`, so the overlap costs reading, never duplicates."""
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """The longest answer body read (an auth, an events page); longer: the place fails."""
    max_list_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    """The longest auth list page read (100 auths, each perhaps with its face images)."""
    max_pages: int = Field(default=1000, ge=1, le=1_000_000)
    """Most pages one list walk reads (the auths; one 7-day window of events), whatever
    the answers' `total` says; a list that goes on is an error, never read to its end."""
    max_429_wait_s: float = Field(default=60.0, gt=0)
    """How long one request rides out 429s in all (Retry-After included); then the place
    is left alone this long too: its remaining actions wait for the next run."""

    def clue_auth_paths(self) -> tuple[str, str]:
        """Return (collection path, item path) of auths, with `{place_id}` and
        `{auth_id}` left for the client to fill in."""
        collection = self.auth_path or f"{self.api_base}/places/{{place_id}}/auths"
        return collection, self.auth_item_path or f"{collection}/{{auth_id}}"


TargetConfig = Annotated[Ef45TargetConfig | ClueTargetConfig, Field(discriminator="type")]


class TemplatesConfig(_Strict):
    """Biometric templates at rest: the AES-256-GCM key (base64 of 32 random bytes, made by
    `syncd keys generate`) and which enrollment terminal wins (`prefer_origin`, else the
    newest capture)."""

    key: SecretRef
    prefer_origin: str | None = None


_CRON = r"^$|^\S+(\s+\S+){4}$"


class DaemonConfig(_Strict):
    """`syncd run`: job schedules (0 or "" turns a job off), stop, logs, metrics, standby.

    A `*_cron` is a five-field crontab line in the daemon's local time zone;
    `reconcile_cron`, when set, replaces `reconcile_every_s`.
    """

    reconcile_every_s: float = Field(default=300.0, ge=0)
    reconcile_cron: str = Field(default="", pattern=_CRON)
    deep_reconcile_cron: str = Field(default="30 2 * * *", pattern=_CRON)
    backfill_every_s: float = Field(default=900.0, ge=0)
    events_every_s: float = Field(default=60.0, ge=0)
    device_clock_cron: str = Field(default="15 3 * * *", pattern=_CRON)
    misfire_grace_s: float = Field(default=60.0, gt=0)
    stop_timeout_s: float = Field(default=30.0, gt=0)
    # A job still running this long after it started is cancelled (its run recorded as
    # interrupted), so that no job holds the daemon's single job slot for good.
    job_deadline_s: float = Field(default=3600.0, gt=0)
    log_format: Literal["kv", "json"] = "kv"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    metrics_listen: str = Field(default="127.0.0.1:9464", pattern=r"^$|^\[?[^\s\]]*\]?:\d{1,5}$")
    standby_poll_s: float = Field(default=5.0, gt=0)
    # "plan": reconciles only plan, store their report in <state directory>/reports/ and
    # wait for `syncd approve RUN_ID`; jobs that write to terminals (backfill, device
    # clock) do not run. "apply": reconciles apply (gated by the safety caps).
    mode: Literal["apply", "plan"] = "apply"
    reports_keep: int = Field(default=30, ge=1)


class NotifyConfig(_Strict):
    """`[notify]`: who hears of a plan that needs a person (changes awaiting approval in
    plan mode, removals blocked in either mode): mail through an SMTP relay, and/or a
    command run with the report's path as its argument and the summary on stdin.

    Mail is on when `smtp_host` is set (then `mail_from` and `mail_to` are required);
    the command when `command` is non-empty. Both are off by default.
    """

    smtp_host: str = ""
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_starttls: bool = False
    smtp_user: str = ""
    smtp_password: SecretRef | None = None
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    mail_from: str = ""
    mail_to: tuple[str, ...] = ()
    subject_prefix: str = "[syncd]"
    command: tuple[str, ...] = ()
    command_timeout_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _mail_complete(self) -> NotifyConfig:
        if self.smtp_host and not (self.mail_from and self.mail_to):
            raise ValueError("smtp_host needs mail_from and mail_to")
        if self.smtp_password is not None and not self.smtp_user:
            raise ValueError("smtp_password needs smtp_user")
        return self

    @property
    def enabled(self) -> bool:
        """Return True when mail or a command is configured."""
        return bool(self.smtp_host or self.command)


class Config(_Strict):
    """The whole of syncd.toml."""

    ledger: LedgerConfig = LedgerConfig()
    safety: SafetyConfig = SafetyConfig()
    access: AccessConfig = AccessConfig()
    apply: ApplyConfig = ApplyConfig()
    daemon: DaemonConfig = DaemonConfig()
    notify: NotifyConfig = NotifyConfig()
    templates: TemplatesConfig | None = None
    sources: dict[Annotated[str, Field(pattern=_ID_PATTERN)], SourceConfig]
    targets: dict[Annotated[str, Field(pattern=_ID_PATTERN)], TargetConfig]

    @model_validator(mode="after")
    def _non_empty(self) -> Config:
        if not self.sources:
            raise ValueError("at least one [sources.NAME] table is required")
        if not self.targets:
            raise ValueError("at least one [targets.NAME] table is required")
        return self


def load_config(path: Path | str | None = None) -> Config:
    """Given a path (or $SYNCD_CONFIG, or ./syncd.toml), return the validated Config.

    Raise ConfigError naming every problem with its dotted path if the file is missing,
    is not TOML, or does not match the schema.
    """
    chosen = Path(path or os.environ.get(CONFIG_ENV) or "syncd.toml")
    try:
        raw = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{chosen}: no such file (use --config or ${CONFIG_ENV})") from None
    except OSError as exc:
        # Typically a service user that may not read the file (docs/service.md: 0644).
        raise ConfigError(f"{chosen}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{chosen}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{chosen}: not valid TOML: {exc}") from None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(chosen, exc)) from None
    try:
        return resolve_paths(config, chosen.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{chosen}: {exc}") from None


def format_validation_error(path: Path, exc: ValidationError) -> str:
    """Return one line per problem of `exc`, each prefixed by its dotted path in `path`.

    A key the schema does not know reads "unknown key", with the closest known key of
    its table as a hint (`did you mean `max_deletes`?`), not pydantic's wording.
    """
    lines = [f"{path}: {exc.error_count()} problem(s):"]
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"] if not _is_union_tag(part))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key" + _did_you_mean(error["loc"])
        lines.append(f"  {where or '(top)'}: {message}")
    return "\n".join(lines)


def _did_you_mean(loc: tuple[int | str, ...]) -> str:
    """Return ` (did you mean `KEY`?)` for the known key of the table at `loc[:-1]`
    closest to the unknown `loc[-1]`, or "" when none is close."""
    table: Any = Config
    for part in loc[:-1]:
        table = _inner(table, part)
    if not (isinstance(table, type) and issubclass(table, BaseModel)):
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(table.model_fields), n=1)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _inner(table: Any, part: int | str) -> Any:
    """Return the type that `part` of a validation error's location leads to in `table`
    (a model's field, a dict's value, a tagged union's variant); None if it is lost."""
    while get_origin(table) is Annotated:
        table = get_args(table)[0]
    if isinstance(table, type) and issubclass(table, BaseModel):
        field = table.model_fields.get(str(part))
        return _required(field.annotation) if field is not None else None
    if get_origin(table) is dict:
        return _required(get_args(table)[1])
    variants = [v for v in get_args(table) if isinstance(v, type) and issubclass(v, BaseModel)]
    for variant in variants:  # a discriminated union: `part` is the variant's `type`
        if get_args(variant.model_fields["type"].annotation) == (part,):
            return variant
    return None


def _required(annotation: Any) -> Any:
    """Return `annotation` without its `| None` and `Annotated` wrappers."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (Union, types.UnionType) and len(args) == 1:
        return _required(args[0])
    return annotation


def _is_union_tag(part: object) -> bool:
    return part in {"csv", "ef45", "clue", "ldap"} and isinstance(part, str)


def resolve_paths(config: Config, base: Path) -> Config:
    """Return `config` with relative file paths (and a relative SQLite URL) made absolute
    and `builtin:` mappings resolved; raise ConfigError for an unknown built-in mapping."""
    sources: dict[str, SourceConfig] = {}
    for name, source in config.sources.items():
        mapping = resolve_mapping(source.mapping, base, f"sources.{name}.mapping")
        update: dict[str, Path] = {"mapping": mapping}
        if isinstance(source, CsvSourceConfig):
            update["path"] = base / source.path
        sources[name] = source.model_copy(update=update)
    ledger = _resolve_ledger(config.ledger, base)
    return config.model_copy(update={"sources": sources, "ledger": ledger})


def _resolve_ledger(ledger: LedgerConfig, base: Path) -> LedgerConfig:
    url = _absolute_sqlite(ledger.url, base)
    state = base / (ledger.state_directory or default_state_directory(url, base))
    return ledger.model_copy(update={"url": url, "state_directory": state})


def state_directory(ledger: LedgerConfig) -> Path:
    """Return syncd's state directory (pin.key, stored reports): `[ledger] state_directory`
    as loaded, else its default seen from the working directory."""
    return ledger.state_directory or default_state_directory(ledger.url, Path.cwd())


def default_state_directory(url: str, base: Path) -> Path:
    """Return `$STATE_DIRECTORY` (systemd's first), else the directory of an absolute
    SQLite ledger URL's file, else `base`."""
    if systemd := os.environ.get("STATE_DIRECTORY", "").split(":")[0]:
        return Path(systemd)
    if url.startswith("sqlite:////"):
        return Path(url.removeprefix("sqlite:///").split("?")[0]).parent
    return base


def _absolute_sqlite(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url.startswith(prefix + "/") or url == prefix + ":memory:":
        return url
    return prefix + str(base / url.removeprefix(prefix))
