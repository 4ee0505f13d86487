"""The exception tree of syncd. The CLI maps it to exit codes in one place (`exit_code`).

    SyncdError                      exit 2 unless a subclass says otherwise
    ├── UsageError                  exit 2: the command line names what does not exist
    ├── ConfigError                 exit 3: the configuration file or a mapping is invalid
    ├── SourceError                 exit 4: the source of truth could not be read safely
    │   └── SourceRefused           the read looked wrong (empty, shrunk) and was refused
    ├── LedgerError                 exit 5: the ledger is unreachable or its schema outdated
    │   └── RunLockBusy             another syncd process holds the run lock
    ├── PlanStale                   exit 6: a saved plan no longer matches ledger or source
    ├── SafetyBlocked               exit 7: actions were held back by a safety cap
    ├── RecordError                 one source record cannot be mapped (the read goes on)
    ├── TargetError                 exit 8: a target failed, or actions are deferred
    │   ├── TemporaryTargetError    retry later: timeouts, connection errors, 5xx, lock busy
    │   │   ├── TargetStorm         actions in a row failed with temporary errors
    │   │   ├── ActionDeadline      one action's tries outlasted `apply.action_deadline_s`
    │   │   └── TargetDeadline      a target's actions outlasted `apply.target_deadline_s`
    │   └── PermanentTargetError    retrying will not help: validation, "DB is full", 401
    ├── SourceProblems              exit 9: source records were skipped (the run went on)
    ├── AssumptionsDiffer           exit 10: `syncd probe` found the device differs
    ├── HostError                   exit 11: the host refused: disk full, address in use…
    ├── Cancelled                   exit 12: the user declined, or could not be asked
    └── Interrupted                 exit 130: stopped by Ctrl-C, SIGTERM or a deadline

Any other exception is a bug: the CLI prints one line naming where the traceback went
and exits 70 (`UNEXPECTED_EXIT`); `syncd --debug` prints the traceback instead.

Environmental faults that reach the CLI or the daemon as foreign exceptions (a ledger
connection lost mid-run, a full disk) are turned into one of these by `environmental`:
the user sees one line; the traceback goes to the debug log.

Exit 1 is not an error: `plan --check` found pending changes (`unlock`: refused without
a terminal, nothing released); a crash never exits 1. When several apply
outcomes hold at once, the code is the first of: 8 (actions failed or deferred), 7
(removals blocked), 9 (records skipped), 0. `plan --check` gives 9 before 1: a skipped
record means the plan itself is incomplete, so an administrator must look at the source
before anything else.

A TargetError also says whose failure it is (`target_level`): the target's as a whole
(unreachable, lock refused, session not opened, API key refused, a storm of temporary
errors), which counts toward the target's quarantine; or one record's (a refused card, a
404 on one person, a validation error), which backs off that record alone.

Messages never contain a secret, a PIN or a biometric template; remote response bodies
are cut short with `cut` before they enter a message.
"""

from __future__ import annotations

import sys

BODY_LIMIT = 300
UNEXPECTED_EXIT = 70  # sysexits' EX_SOFTWARE: an internal error, never a verdict


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
    """Another syncd process (the daemon or an administrator) holds the run lock: it
    works on the terminals (apply, backfill, events, device clock, unlock)."""


class PlanStale(SyncdError):
    """A saved plan no longer matches the ledger or the source; nothing was applied."""

    exit_code = 6


class SafetyBlocked(SyncdError):
    """Some actions were held back by a safety cap and await an administrator."""

    exit_code = 7


class TargetError(SyncdError):
    """A target could not be brought in step.

    `target_level` (a class attribute, overridden where a subclass knows better): True
    when the target as a whole failed (unreachable, lock, session, credentials), False
    when one record did (the target answered, about that record only).
    """

    exit_code = 8
    target_level = True


class TemporaryTargetError(TargetError):
    """A failure that may pass: retry later (timeouts, connection errors, 5xx, lock busy).

    `retry_after_s`: how long the target asked to be left alone before the next try (a
    429's Retry-After, a lock's wait), None if it did not say; set by the raiser
    (`error.retry_after_s = …`) and honoured by the retry policy (`engine.retrying`).
    """

    retry_after_s: float | None = None


class TargetStorm(TemporaryTargetError):
    """Several actions in a row failed with temporary errors (a 5xx storm): the target is
    in trouble, not one record."""


class ActionDeadline(TemporaryTargetError):
    """One action's tries (its retries and their pauses included) outlasted
    `apply.action_deadline_s`: that action fails; the next one goes on."""

    target_level = False


class TargetDeadline(TemporaryTargetError):
    """A target's actions outlasted `apply.target_deadline_s`: the target is given up
    for this run (its remaining actions fail), the other targets go on."""


class PermanentTargetError(TargetError):
    """A failure that retrying will not fix (validation, "DB is full", key refused).

    Record-level unless a subclass says otherwise (a refused API key is the target's).
    """

    target_level = False


class SourceProblems(SyncdError):
    """Source records could not be used (held, disabled or skipped): the rest was applied,
    but an administrator must fix the source. Raised by `apply` and `plan --check` last,
    so that failures (8) and blocked removals (7) take precedence."""

    exit_code = 9


class AssumptionsDiffer(SyncdError):
    """`syncd probe`: the device differs from an assumption syncd relies on; the probe's
    table names the configuration keys to set."""

    exit_code = 10


class HostError(SyncdError):
    """The host refused what syncd needed: a full disk, a read-only file system, a
    network address in use."""

    exit_code = 11


class UsageError(SyncdError):
    """The command line names something that does not exist (a run, a person, a job)."""

    exit_code = 2


class Cancelled(SyncdError):
    """The user declined, or confirmation was needed and none could be asked."""

    exit_code = 12


class Interrupted(SyncdError):
    """Stopped on request (Ctrl-C, SIGTERM) or by a deadline before the work was done;
    what was not done is planned again by the next run."""

    exit_code = 130


def environmental(error: BaseException) -> SyncdError | None:
    """Return the SyncdError an environmental fault stands for, None if `error` is not one.

    A database error (SQLAlchemy's, looked up only if SQLAlchemy is loaded) is the
    ledger's: LedgerError. An OSError (disk full, permission denied, address in use) is
    the host's: HostError. The message is one line, the remote text cut short.
    """
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(error, sa_exc.SQLAlchemyError):
        return ledger_failing(error)
    if isinstance(error, OSError):
        where = f": {error.filename}" if error.filename else ""
        text = error.strerror or str(error) or type(error).__name__
        return HostError(f"{cut(text)}{where}")
    return None


def ledger_failing(error: BaseException) -> LedgerError:
    """Return the one-line LedgerError for a database error (the driver's first line,
    cut short: SQLAlchemy's own text adds lines of background)."""
    cause = getattr(error, "orig", None) or error
    detail = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return LedgerError(f"ledger unreachable or failing: {type(cause).__name__}: {cut(detail)}")


def is_target_level(error: BaseException) -> bool:
    """Return True if `error` speaks of a target as a whole, False if of one record only.

    Errors that are not TargetErrors (a template that cannot be read, say) concern the
    action's own data: record-level.
    """
    return isinstance(error, TargetError) and error.target_level


def exit_code(error: BaseException) -> int:
    """Return the process exit code for `error`: its own for a SyncdError, else 70 (a bug;
    1 is reserved for `plan --check`)."""
    return error.exit_code if isinstance(error, SyncdError) else UNEXPECTED_EXIT
