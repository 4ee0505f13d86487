"""A hostile EF-45 terminal cannot take syncd or its ledger down (issue 15).

The terminal "lobby" sits behind `tests.fixtures.hostile.HostileProxy`, which rewrites
the answers of a real emulator the way a broken or compromised device would. syncd runs
as a real CLI child process (`plan --deep`, `apply`); for each hostile answer the test
asserts a clear EF-45 error (no traceback) within the deadline, the child's peak RSS
(its `ru_maxrss`, the kernel's VmHWM, read with `os.wait4`) under `PEAK_RSS_MB`, no
malformed value anywhere in the ledger, and that the next run against the healed
terminal converges.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from syncd.config import ApplyConfig
from syncd.emulators.hr_sample import apply_demo_changes
from syncd.engine.apply import STORM_AFTER
from syncd.ledger.lockmemo import LedgerLockMemo
from syncd.ledger.store import Ledger, create_ledger_engine
from syncd.owners import Owner, ProcessId
from syncd.targets.ef45.lockstate import LockState
from tests.fixtures.hostile import BAD_UUIDS, HostileProxy
from tests.fixtures.syncd_env import SYNCD, SyncdEnv

TIMEOUT_S = 2.0
MAX_PAGES = 200
PEAK_RSS_MB = 300
DEADLINE_S = 45.0
"""A hostile run must end well within this (process start, ledger, two terminals)."""
# Raw control characters and the hostile ids themselves; an error message may quote a
# refused value escaped (`ids.shown`: repr, cut short), which holds none of these.
MARKERS = ("\r", "\x00", "\t", "\u202e", "u" * 300, "ghost-")


@dataclass(frozen=True)
class Child:
    """A finished CLI child process: its exit, output, wall time and peak RSS."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_mb: float


@pytest.fixture
def hostile(syncd_env: SyncdEnv) -> Iterator[tuple[SyncdEnv, HostileProxy]]:
    """`syncd_env` with terminal "lobby" behind a hostile proxy (healthy until a case is
    set), short timeouts and page cap, and every terminal converged once."""
    proxy = HostileProxy(syncd_env.urls["lobby"]).start()
    try:
        syncd_env.urls["lobby"] = proxy.url
        syncd_env.write_config()
        text = syncd_env.config_path.read_text(encoding="utf-8")
        bounded = f"timeout_s = {TIMEOUT_S:g}\nmax_pages = {MAX_PAGES}\nlock_wait_s = 0.5\n"
        syncd_env.config_path.write_text(text.replace("timeout_s = 5\n", bounded))
        first = run_child(syncd_env, "apply", "--yes")
        assert first.returncode == 0, first.stdout + first.stderr
        yield syncd_env, proxy
    finally:
        proxy.stop()


def run_child(env: SyncdEnv, *args: str) -> Child:
    """Run `syncd ARGS` as a child process and return how it ended; kill it past DEADLINE_S."""
    out, err = env.workdir / "child.out", env.workdir / "child.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [*SYNCD, *args], cwd=env.workdir, env=env.environment(), stdout=stdout, stderr=stderr
        )
    killer = threading.Timer(DEADLINE_S * 2, process.kill)
    killer.start()
    started = time.monotonic()
    try:
        _, status, usage = os.wait4(process.pid, 0)  # the child's own rusage: its VmHWM
    finally:
        killer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    return Child(
        process.returncode,
        out.read_text(encoding="utf-8", errors="replace"),
        err.read_text(encoding="utf-8", errors="replace"),
        time.monotonic() - started,
        usage.ru_maxrss / 1024,
    )


def ledger_texts(env: SyncdEnv) -> Iterator[tuple[str, str]]:
    """Yield (table, text) for every text value stored in any table of the ledger."""
    engine = create_ledger_engine(env.ledger_url)
    try:
        tables = sa.MetaData()
        tables.reflect(engine)
        with engine.connect() as connection:
            for table in tables.sorted_tables:
                for row in connection.execute(sa.select(table)):
                    for value in row:
                        if isinstance(value, str):
                            yield table.name, value
    finally:
        engine.dispose()


def assert_nothing_malformed_stored(env: SyncdEnv) -> None:
    for table, text in ledger_texts(env):
        for marker in MARKERS:
            assert marker not in text, f"{table} holds {marker!r}: {text[:200]!r}"


def words(text: str) -> str:
    """Return `text` with every run of white space one space (the CLI wraps lines)."""
    return " ".join(text.split())


def assert_clear_failure(child: Child, returncode: int, *expected: str) -> None:
    """The run ended with `returncode`, naming the terminal's error clearly (`expected`),
    with no traceback, in time and in bounded memory."""
    output = words(child.stdout + child.stderr)
    assert child.returncode == returncode, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert "EF-45 http://127.0.0.1" in output, output[-3000:]
    for text in expected:
        assert words(text) in output, output[-3000:]
    assert child.seconds < DEADLINE_S, f"took {child.seconds:.1f} s"
    assert child.peak_mb < PEAK_RSS_MB, f"peak RSS {child.peak_mb:.0f} MB"


def assert_run_failed_and_shown(env: SyncdEnv) -> None:
    """The hostile run is recorded ended and not ok (never left "running"), and
    `syncd status` names the terminal's error."""
    engine = create_ledger_engine(env.ledger_url)
    try:
        with engine.connect() as conn:
            last = conn.execute(
                sa.text("SELECT outcome FROM runs WHERE kind = 'apply' ORDER BY id DESC LIMIT 1")
            ).scalar_one()
    finally:
        engine.dispose()
    assert last in ("failed", "partial"), last
    status = env.run("status")
    assert "lobby" in status.stdout and "lock_uid is not a UUID" in words(status.stdout)


def assert_converges(env: SyncdEnv, proxy: HostileProxy) -> None:
    """With the terminal healthy again, a deep apply succeeds and a deep plan is empty."""
    proxy.case = None
    healed = run_child(env, "apply", "--yes", "--deep")
    assert healed.returncode == 0, healed.stdout[-3000:] + healed.stderr[-3000:]
    check = run_child(env, "plan", "--deep", "--check")
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    assert_nothing_malformed_stored(env)


LIST_CASES = {
    "endless_pages": f"more than {MAX_PAGES} pages claimed (max_pages)",
    "huge_body": "over the limit of 67108864 bytes (max_list_body_bytes)",
    "endless_chunked": "over the limit of 67108864 bytes (max_list_body_bytes)",
    "never_answers": f"no answer within {TIMEOUT_S:g} s",
    "drip": f"no answer within {TIMEOUT_S:g} s",
    "drop_mid_body": "peer closed connection without sending complete message body",
}


# A failed observation stores nothing: the list cases need no second ledger (the cases
# that store, the lock uid's, run on SQLite and PostgreSQL).
@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("case", sorted(LIST_CASES))
def test_a_hostile_list_answer_is_a_clear_bounded_error(
    hostile: tuple[SyncdEnv, HostileProxy], case: str
) -> None:
    env, proxy = hostile
    proxy.case = case
    child = run_child(env, "plan", "--deep")
    assert proxy.answered.is_set() and proxy.hits[case] >= 1
    # A deep plan whose observation failed plans from the ledger only, says why, and
    # exits 8: the look that was asked for did not happen.
    assert_clear_failure(
        child,
        8,
        "lobby: observation failed",
        "GET /1.0/subjects",
        LIST_CASES[case],
        "the deep look failed at lobby",
    )
    if case == "endless_pages":
        assert proxy.hits[case] <= MAX_PAGES  # stopped at the cap, not one page more
    if case in ("huge_body", "endless_chunked", "never_answers", "drip"):
        assert proxy.hung_up.is_set()  # syncd stopped reading and closed the connection
    assert_nothing_malformed_stored(env)
    assert_converges(env, proxy)


def test_a_lock_uid_with_crlf_is_refused_and_never_stored(
    hostile: tuple[SyncdEnv, HostileProxy],
) -> None:
    env, proxy = hostile
    apply_demo_changes(env.csv_path)  # changes to apply: the apply needs a locked session
    proxy.case = "lock_crlf"
    child = run_child(env, "apply", "--yes")
    assert_clear_failure(
        child, 8, "POST /1.0/lock", "lock_uid is not a UUID", "refused, not stored"
    )
    assert "\r\nX: 1" not in child.stdout + child.stderr  # shown escaped, never raw
    assert_run_failed_and_shown(env)
    assert_nothing_malformed_stored(env)
    assert_converges(env, proxy)


def test_429_for_ever_is_a_temporary_refusal_bounded_by_the_run(
    hostile: tuple[SyncdEnv, HostileProxy],
) -> None:
    """A terminal (or a proxy before it) that answers every write "too many requests":
    each action waits out Retry-After within its tries, a storm gives the terminal up
    for this run, the records are not marked refused for good, and the next run with
    the terminal healthy applies them."""
    env, proxy = hostile
    apply_demo_changes(env.csv_path)
    proxy.case = "too_many"
    child = run_child(env, "apply", "--yes")
    assert_clear_failure(child, 8, "HTTP 429")
    # Each action is sent at most `retries + 1` times; the storm stops the target after
    # STORM_AFTER actions in a row failed so (the one in flight finishes its tries).
    tries = ApplyConfig().retries + 1
    assert 1 <= proxy.hits["too_many"] <= (STORM_AFTER + 1) * tries
    assert_nothing_malformed_stored(env)
    assert_converges(env, proxy)


def test_user_uuids_with_control_characters_are_skipped(
    hostile: tuple[SyncdEnv, HostileProxy],
) -> None:
    env, proxy = hostile
    proxy.case = "uuid_control"
    child = run_child(env, "apply", "--yes", "--deep")
    output = child.stdout + child.stderr
    assert child.returncode == 0, output[-3000:]
    assert proxy.hits["uuid_control"] >= 2  # subjects and user infos
    assert f"{len(BAD_UUIDS)} subjects with a malformed user_uuid skipped" in words(output)
    assert child.peak_mb < PEAK_RSS_MB
    assert_nothing_malformed_stored(env)
    assert_converges(env, proxy)


def test_a_stored_lock_uid_that_is_not_one_is_discarded(
    hostile: tuple[SyncdEnv, HostileProxy],
) -> None:
    """A memo an older syncd wrote with a hostile uid: the next run goes on by itself."""
    env, proxy = hostile
    ledger = Ledger.open(env.ledger_url)
    try:
        gone = ProcessId(ProcessId.current().host, 2**22 + 7, "gone:1", "an-ended-syncd")
        memo = LedgerLockMemo(ledger, "lobby", process=gone)
        memo.remember(LockState(held="x\r\nX: 1", owner=Owner(gone, run=1)).encode())
    finally:
        ledger.close()
    child = run_child(env, "apply", "--yes", "--deep")
    output = child.stdout + child.stderr
    assert child.returncode == 0, output[-3000:]
    assert "discarded a remembered lock uid that is not a UUID" in words(output)
    assert_nothing_malformed_stored(env)
    assert_converges(env, proxy)
