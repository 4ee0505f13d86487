"""Every exit code of the README's "Exit codes" table, by the real CLI as a subprocess.

Codes proven by existing tests are referenced here rather than run twice:

- 0, 1: `test_in_step_is_0_and_pending_changes_are_1` below
- 2: `test_usage_errors_are_2` below; test_unlock_cli.py (unknown target)
- 3: `test_configuration_errors_are_3_with_a_typo_hint` below; test_bounded_inputs.py
- 4: test_engine_admin.py::test_half_the_hr_file_gone_blocks_removals_until_approved
- 5: `test_unreachable_ledger_is_5` below;
  test_daemon.py::test_admin_apply_fails_clearly_while_daemon_applies (run lock)
- 6: test_engine_admin.py::test_saved_plan_applies_exactly_or_refuses_when_stale
- 7: `test_blocked_removals_are_7_and_the_hint_names_the_n_needed` below
- 8: test_engine_admin.py::test_failing_terminal_is_quarantined_and_never_delays_others
- 9: test_skipped_records.py::test_apply_and_check_exit_9_on_a_bad_row_then_0_once_fixed
- 10: test_probe.py::test_a_device_that_differs_exits_10_and_names_the_key
- 11: test_stops_and_faults.py::test_full_disk_is_one_line_and_exit_11
- 12: `test_non_interactive_apply_without_yes_is_12`, `test_declining_the_prompt_is_12`
- 70: `test_an_unexpected_exception_is_one_line_and_70` below
- 130: test_stops_and_faults.py::test_cli_apply_stops_on_ctrl_c_while_a_terminal_hangs
"""

from __future__ import annotations

import os
import pty
import select
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from syncd.emulators.hr_sample import read_people_csv, write_people_csv
from tests.fixtures.syncd_env import SYNCD, SyncdEnv

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)

# `syncd status` with a bug injected in a function it calls, without any production hook.
CRASHING_STATUS = """
import sys
from syncd.ledger import queries

def broken(*args, **kwargs):
    raise RuntimeError("injected bug near [templates]")

queries.target_status = broken
from syncd.cli import main
main(sys.argv[1:])
"""


def _crash(env: SyncdEnv, *args: str, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CRASHING_STATUS, *args],
        cwd=env.workdir,
        env={**env.environment(), "STATE_DIRECTORY": str(state)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_in_step_is_0_and_pending_changes_are_1(syncd_env: SyncdEnv) -> None:
    pending = syncd_env.run("plan", "--check")
    assert pending.returncode == 1, pending.stdout + pending.stderr
    applied = syncd_env.run("apply", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert syncd_env.run("plan", "--check").returncode == 0
    version = syncd_env.run("--version")
    assert version.returncode == 0 and version.stdout.startswith("syncd ")


def test_usage_errors_are_2(syncd_env: SyncdEnv) -> None:
    bad_option = syncd_env.run("plan", "--no-such-option")
    assert bad_option.returncode == 2 and "No such option" in bad_option.stderr
    no_run = syncd_env.run("approve", "9999", "--yes")
    assert no_run.returncode == 2, no_run.stdout + no_run.stderr
    assert "approve 9999: no such run" in no_run.stderr
    no_target = syncd_env.run("plan", "--target", "lobbby")
    assert no_target.returncode == 2, no_target.stderr
    assert "unknown target(s): lobbby (known: lab, lobby)" in no_target.stderr
    no_job = syncd_env.run("trigger", "reconcil")
    assert no_job.returncode == 2, no_job.stderr
    assert "unknown job 'reconcil'; valid jobs: " in no_job.stderr and "reconcile" in no_job.stderr


def test_configuration_errors_are_3_with_a_typo_hint(syncd_env: SyncdEnv) -> None:
    syncd_env.extra_config = ["[safety]", "max_delets = 3"]
    syncd_env.write_config()
    done = syncd_env.run("plan")
    assert done.returncode == 3, done.stderr
    assert "safety.max_delets: unknown key (did you mean `max_deletes`?)" in done.stderr
    assert "Extra inputs" not in done.stderr


def test_a_bad_terminal_zone_is_a_configuration_error_3(syncd_env: SyncdEnv) -> None:
    syncd_env.extra_config = [
        "[targets.zoned]",
        'type = "ef45"',
        'url = "http://127.0.0.1:1"',
        'time_zone = "Europe/Berlinn"',
    ]
    syncd_env.write_config()
    done = syncd_env.run("plan")
    assert done.returncode == 3, done.stderr
    assert "targets.zoned.time_zone: unknown time zone 'Europe/Berlinn'" in done.stderr
    assert "ZoneInfoNotFoundError" not in done.stderr + done.stdout


def test_unreachable_ledger_is_5(syncd_env: SyncdEnv) -> None:
    syncd_env.ledger_url = "postgresql://syncd@127.0.0.1:1/nothing"  # nothing listens on 1
    syncd_env.write_config()
    done = syncd_env.run("status")
    assert done.returncode == 5, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_blocked_removals_are_7_and_the_hint_names_the_n_needed(syncd_env: SyncdEnv) -> None:
    syncd_env.run("apply", "--yes", check=True)
    write_people_csv(syncd_env.csv_path, read_people_csv(syncd_env.csv_path)[:34])  # 6 leave
    args = ("apply", "--yes", "--allow-shrink")
    too_few = syncd_env.run(*args, "--allow-deletes", "3")
    assert too_few.returncode == 7, too_few.stdout + too_few.stderr
    assert "`syncd apply --allow-deletes 6`" in too_few.stderr
    assert "--allow-deletes 3 is below the 6 removals of one target" in too_few.stderr
    enough = syncd_env.run(*args, "--allow-deletes", "6")
    assert enough.returncode == 0, enough.stdout + enough.stderr
    lobby = syncd_env.terminals["lobby"].subjects.values()
    assert sum(1 for s in lobby if not s["access_allowed"]) == 6


def test_non_interactive_apply_without_yes_is_12(syncd_env: SyncdEnv) -> None:
    for answer in (None, "y\n"):  # no input at all, and `echo y | syncd apply`
        done = subprocess.run(
            [*SYNCD, "apply"],
            cwd=syncd_env.workdir,
            env=syncd_env.environment(),
            input=answer,
            stdin=subprocess.DEVNULL if answer is None else None,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 12, done.stdout + done.stderr
        assert "stdin is not a terminal" in done.stderr and "--yes" in done.stderr
    assert not syncd_env.terminals["lobby"].subjects  # nothing applied
    history = syncd_env.run("history").stdout
    assert "cancelled" in history


def _read_until(fd: int, wanted: bytes, seen: bytearray, timeout: float = 60) -> None:
    """Read the pty into `seen` until `wanted` appears (or fail after `timeout`)."""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{wanted!r} never shown; output so far: {bytes(seen)[-2000:]!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            assert chunk, f"{wanted!r} never shown; output: {bytes(seen)[-2000:]!r}"
            seen.extend(chunk)


def test_declining_the_prompt_is_12(syncd_env: SyncdEnv) -> None:
    """On a real terminal the question stays visible (no progress display erases it);
    answering no prints "Apply cancelled." and exits 12."""
    main, child = pty.openpty()
    process = subprocess.Popen(
        [*SYNCD, "apply"],
        cwd=syncd_env.workdir,
        env=syncd_env.environment(),
        stdin=child,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    seen = bytearray()
    try:
        _read_until(main, b"Apply these changes? [y/N]", seen)
        os.write(main, b"n\n")
        _read_until(main, b"Apply cancelled.", seen)
        assert process.wait(timeout=60) == 12, bytes(seen)[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main)
    assert not syncd_env.terminals["lobby"].subjects


def test_an_unexpected_exception_is_one_line_and_70(syncd_env: SyncdEnv, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    done = _crash(syncd_env, "status", state=state)
    assert done.returncode == 70, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: unexpected RuntimeError: injected bug near [templates]")
    saved = Path(lines[0].rsplit("full traceback in ", 1)[1])
    assert saved.parent == state and stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert "Traceback" in saved.read_text() and "broken" in saved.read_text()
    debug = _crash(syncd_env, "--debug", "status", state=state)
    assert debug.returncode == 70
    assert "Traceback (most recent call last)" in debug.stderr and "def broken" not in debug.stdout
    assert len(list(state.iterdir())) == 1  # --debug prints, it writes no file


def test_bracketed_words_survive_in_messages(syncd_env: SyncdEnv) -> None:
    key = syncd_env.workdir / "new.key"
    key.write_text("x")
    key.chmod(0o600)
    done = syncd_env.run("keys", "rotate", "--new-key-file", str(key))
    assert done.returncode == 3, done.stderr
    assert "has no [templates] key" in done.stderr


def test_help_shows_no_type_metavars_of_lists(syncd_env: SyncdEnv) -> None:
    for command in ("plan", "apply", "backfill", "device-clock"):
        shown = syncd_env.run(command, "--help").stdout
        assert "list[" not in shown and "TARGET" in shown, shown


def test_piped_output_is_not_wrapped(syncd_env: SyncdEnv) -> None:
    name = "t" + "x" * 299  # a long value: one line on a pipe, not cut at 80 columns
    env = {k: v for k, v in syncd_env.environment().items() if k != "COLUMNS"}
    done = subprocess.run(
        [*SYNCD, "plan", "--target", name],
        cwd=syncd_env.workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and name in error[0], done.stderr


def test_a_failed_target_bar_shows_failed_not_complete(syncd_env: SyncdEnv) -> None:
    syncd_env.urls["lab"] = "http://127.0.0.1:9"  # nothing listens there
    syncd_env.apply_settings = ["retries = 0"]
    syncd_env.write_config()
    done = syncd_env.run("apply", "--yes")
    assert done.returncode == 8, done.stdout + done.stderr
    lab = [line for line in done.stdout.splitlines() if line.startswith("lab ")]
    assert lab and "failed" in lab[-1] and "40/40" not in lab[-1], done.stdout
    lobby = [line for line in done.stdout.splitlines() if line.startswith("lobby ")]
    assert lobby and "40/40" in lobby[-1] and "failed" not in lobby[-1], done.stdout
