"""The exception tree of syncd. The CLI maps it to exit codes in one place (`exit_code`).

    SyncdError                      exit 2 unless a subclass says otherwise
    ├── ConfigError                 exit 3: the configuration file or a mapping is invalid
    ├── SourceError                 exit 4: the source of truth could not be read safely
    │   └── SourceRefused           the read looked wrong (empty, shrunk) and was refused
    ├── LedgerError                 exit 5: the ledger is unreachable or its schema outdated
    │   └── RunLockBusy             another apply holds the run lock
    ├── PlanStale                   exit 6: a saved plan no longer matches ledger or source
    ├── SafetyBlocked               exit 7: actions were held back by a safety cap
    ├── RecordError                 one source record cannot be mapped (the read goes on)
    └── TargetError                 exit 8: a target failed (only when a whole run failed)
        ├── TemporaryTargetError    retry later: timeouts, connection errors, 5xx, lock busy
        └── PermanentTargetError    retrying will not help: validation, "DB is full", 401

Messages never contain a secret, a PIN or a biometric template; remote response bodies
are cut short with `cut` before they enter a message.
"""

from __future__ import annotations

BODY_LIMIT = 300


def cut(text: str, limit: int = BODY_LIMIT) -> str:
    """Return `text` cut to `limit` characters, marking the cut, for error messages."""
    text = text.replace("\n", " ").strip()
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


class SyncdError(Exception):
    """Base of every error syncd raises on purpose."""

    exit_code = 2


class ConfigError(SyncdError):
    """The configuration or a mapping file is invalid; the message lists every problem."""

    exit_code = 3


class SourceError(SyncdError):
    """The source of truth could not be read completely and safely."""

    exit_code = 4


class SourceRefused(SourceError):
    """The source answered, but its answer looks wrong (empty, shrunk): refused."""


class RecordError(SyncdError):
    """One source record cannot be mapped to a Person: names the field and why.

    Sources catch it per record, report it as a problem with the record's location, and
    go on with the next record.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class LedgerError(SyncdError):
    """The ledger is unreachable, or its schema is not at the expected revision."""

    exit_code = 5


class RunLockBusy(LedgerError):
    """Another apply (the daemon or an administrator) holds the run lock."""


class PlanStale(SyncdError):
    """A saved plan no longer matches the ledger or the source; nothing was applied."""

    exit_code = 6


class SafetyBlocked(SyncdError):
    """Some actions were held back by a safety cap and await an administrator."""

    exit_code = 7


class TargetError(SyncdError):
    """A target could not be brought in step."""

    exit_code = 8


class TemporaryTargetError(TargetError):
    """A failure that may pass: retry later (timeouts, connection errors, 5xx, lock busy)."""


class PermanentTargetError(TargetError):
    """A failure that retrying will not fix (validation, "DB is full", key refused)."""


def exit_code(error: BaseException) -> int:
    """Return the process exit code for `error` (1 is reserved for `plan --check`)."""
    return error.exit_code if isinstance(error, SyncdError) else 2
