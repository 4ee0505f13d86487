"""The schema of syncd.toml: one pydantic model per table, extra keys forbidden, every
value checked when the file is loaded (`syncd.config.checks` for zones, cron lines and
versions; `syncd.config.secretref` for secrets).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import Field, field_validator, model_validator

from syncd.config.checks import CronLine, Name, TimeZoneName, Version
from syncd.config.secretref import SecretRef, Strict


class LedgerConfig(Strict):
    """Where the ledger lives (SQLAlchemy URL: SQLite file or PostgreSQL) and the key of its
    PINs (`ledger.pinkey`): `pin_key`, else a subkey of the `[templates]` key, else the
    file `pin.key` made in `state_directory` (unset: `$STATE_DIRECTORY`, else the SQLite
    ledger's directory, else the config file's)."""

    url: str = "sqlite:///ledger.db"
    pin_key: SecretRef | None = None
    state_directory: Path | None = None


class SafetyConfig(Strict):
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


class AccessConfig(Strict):
    """When people may pass, as syncd decides it (README, "Who may pass, and when").

    `create_ahead_days`: an upcoming hire is created on the targets this many days before
    their start, with access off, so they can enroll before day one (0: on the day).
    `time_zone`: the site's zone, in which reports show the times access opens and closes.
    `upcoming_days`: how far ahead `syncd plan` lists those times. `boundary_grace_s`: the
    daemon's reconcile at a boundary starts this long after it (clock skew margin).
    """

    create_ahead_days: float = Field(default=14.0, ge=0, le=366)
    time_zone: TimeZoneName = "UTC"
    upcoming_days: float = Field(default=7.0, ge=0, le=366)
    boundary_grace_s: float = Field(default=1.0, ge=0, le=50)


class ApplyConfig(Strict):
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


class CsvSourceConfig(Strict):
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


class LdapSourceConfig(Strict):
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


MatchUntilFormat = Literal["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S", "%Y-%m-%d"]
MATCH_UNTIL_FORMATS: tuple[str, ...] = get_args(MatchUntilFormat)
"""The `match_until` forms an EF-45 may take, syncd's default (ISO, local) first; `syncd
probe` tries them in this order."""


class Ef45TargetConfig(Strict):
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
    *Unverified* on real hardware: `syncd probe` checks it. 4xx only, never 404 or 409:
    those are the device's answers about records; a 404 is counted as "absent" only
    after the lock is confirmed held, whatever a forgotten lock answers."""
    batch_min_version: Version = "1.3.0"
    page_size: int = Field(default=50, ge=1, le=1000)
    time_zone: TimeZoneName = "UTC"
    orphans: Literal["report", "delete"] = "report"
    """Users on the terminal the ledger never created (seen by a deep run): report only,
    or delete them too (within the removal caps)."""
    delete_logs_after_collect: bool = False
    """`syncd events collect` deletes the logs it stored from the terminal (off: never)."""
    record_version: int | None = None
    """The terminal's template algorithm (`GET /subjects/record-version`); templates of
    another record version are never sent to it. Unset: the origin's is assumed and the
    session's is checked at apply."""
    match_until_format: MatchUntilFormat = "%Y-%m-%dT%H:%M:%S"
    """How `match_until` (the end of access, local wall time in `time_zone`) is written:
    a strftime format from `MATCH_UNTIL_FORMATS`. The firmware's format is *unverified*:
    `syncd probe` tries each and names the one to set when ISO is refused."""
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
    max_list_total_bytes: int = Field(default=512 * 1024 * 1024, ge=64 * 1024, le=64 * 1024**3)
    """The most bytes one list may take in all its pages (512 MiB: about 100 000 users
    with their templates); past it the list fails (Ef45Unavailable), so memory stays
    bounded whatever pages the terminal claims."""

    @field_validator("lost_lock_statuses")
    @classmethod
    def _lock_statuses(cls, statuses: tuple[int, ...]) -> tuple[int, ...]:
        if wrong := [s for s in statuses if s in (404, 409) or not 400 <= s < 500]:
            raise ValueError(
                f"{', '.join(map(str, wrong))} cannot mean a lost lock: only 4xx statuses, "
                "and not 404 or 409 (the device's answers about a record; syncd confirms "
                "its lock before it counts a 404 as absent)"
            )
        return statuses


CLUE_EVENTS_PATH = "/v1/be/events"
"""The events query of the CLUe quick start: the only one whose parameters and answer are
documented. A newer guide points logs at `/v1/audit-logs` (*unverified*: neither its
parameters nor its answer are shown), so that is not the default."""


class ClueTargetConfig(Strict):
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
    time_zone: TimeZoneName = "UTC"
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
    max_list_total_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024, le=64 * 1024**3)
    """The most bytes one list walk reads in all its pages (1 GiB: auths may carry face
    images); past it the place fails, so memory stays bounded whatever CLUe claims."""
    max_429_wait_s: float = Field(default=60.0, gt=0)
    """How long one request rides out 429s in all (Retry-After included); then the place
    is left alone this long too: its remaining actions wait for the next run."""

    def clue_auth_paths(self) -> tuple[str, str]:
        """Return (collection path, item path) of auths, with `{place_id}` and
        `{auth_id}` left for the client to fill in."""
        collection = self.auth_path or f"{self.api_base}/places/{{place_id}}/auths"
        return collection, self.auth_item_path or f"{collection}/{{auth_id}}"


TargetConfig = Annotated[Ef45TargetConfig | ClueTargetConfig, Field(discriminator="type")]


class TemplatesConfig(Strict):
    """Biometric templates at rest: the AES-256-GCM key (base64 of 32 random bytes, made by
    `syncd keys generate`) and which enrollment terminal wins (`prefer_origin`, else the
    newest capture)."""

    key: SecretRef
    prefer_origin: str | None = None


class DaemonConfig(Strict):
    """`syncd run`: job schedules (0 or "" turns a job off), stop, logs, metrics, standby.

    A `*_cron` is a five-field crontab line in the daemon's local time zone;
    `reconcile_cron`, when set, replaces `reconcile_every_s`.
    """

    reconcile_every_s: float = Field(default=300.0, ge=0)
    reconcile_cron: CronLine = ""
    deep_reconcile_cron: CronLine = "30 2 * * *"
    backfill_every_s: float = Field(default=900.0, ge=0)
    events_every_s: float = Field(default=60.0, ge=0)
    device_clock_cron: CronLine = "15 3 * * *"
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


class NotifyConfig(Strict):
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


class Config(Strict):
    """The whole of syncd.toml."""

    ledger: LedgerConfig = LedgerConfig()
    safety: SafetyConfig = SafetyConfig()
    access: AccessConfig = AccessConfig()
    apply: ApplyConfig = ApplyConfig()
    daemon: DaemonConfig = DaemonConfig()
    notify: NotifyConfig = NotifyConfig()
    templates: TemplatesConfig | None = None
    sources: dict[Name, SourceConfig]
    targets: dict[Name, TargetConfig]

    @model_validator(mode="after")
    def _non_empty(self) -> Config:
        if not self.sources:
            raise ValueError("at least one [sources.NAME] table is required")
        if not self.targets:
            raise ValueError("at least one [targets.NAME] table is required")
        return self
