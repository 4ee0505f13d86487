"""Crash safety: `kill -9` of `syncd apply` mid-run loses nothing, duplicates nothing.

The CLI runs as a real process against emulated terminals slowed down; it is killed
several times, each once the ledger shows its run and a random number of its outcomes
recorded (the seed is printed), so every kill lands mid-run; then it is allowed to
finish. The terminals must then hold exactly the HR people, no user may have
been created twice, the terminals must be unlocked, and the ledger must agree.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time

import pytest
import sqlalchemy as sa

from syncd.emulators.hr_sample import apply_demo_changes, read_people_csv
from tests.fixtures.clue_env import ClueEnv, clue_target_lines
from tests.fixtures.syncd_env import SYNCD, SyncdEnv
from tests.integration.test_clue_convergence import ok_rows
from tests.integration.test_convergence import assert_terminals_match_hr
from tests.integration.test_convergence_property import assert_never_added_twice

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)]


def recorded(ledger: sa.Engine) -> int:
    """Return how many runs and outcomes the ledger has recorded (each outcome but a
    "pending" adds a `changes` row; each run a `runs` row)."""
    with ledger.connect() as conn:
        query = "SELECT (SELECT count(*) FROM runs) + (SELECT count(*) FROM changes)"
        return int(conn.execute(sa.text(query)).scalar_one())


def kill_apply_mid_run(env: SyncdEnv, rng: random.Random, times: int) -> int:
    """Start `syncd apply` and SIGKILL it once the ledger has recorded its run and a random
    0 to 5 of its outcomes (so the kill lands mid-run, wherever the run is), `times`
    times; return the number of runs killed (a run that ended first is not)."""
    ledger = sa.create_engine(env.ledger_url)
    kills = 0
    try:
        for _ in range(times):
            wanted = recorded(ledger) + 1 + rng.randint(0, 5)
            process = subprocess.Popen(
                [*SYNCD, "apply", "--yes"], cwd=env.workdir,
                env=env.environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            while process.poll() is None and recorded(ledger) < wanted:
                time.sleep(0.005)  # polls the ledger: the kill follows what the run recorded
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait()
    finally:
        ledger.dispose()
    return kills


def final_apply(env: SyncdEnv) -> subprocess.CompletedProcess[str]:
    """Apply after the kills; return the last apply.

    A kill between a lock request and its answer leaves a terminal locked by nobody:
    syncd cannot tell that lock from an operator's, so it never steals it; it waits
    `lock_wait_s` (shortened here), then names `syncd unlock`. That administrator's step
    is taken here for each terminal still locked, then apply runs again. A lock taken by
    a killed session whose uid reached the ledger is released by the next run itself.
    """
    text = env.config_path.read_text(encoding="utf-8")
    text = text.replace('type = "ef45"\n', 'type = "ef45"\nlock_wait_s = 0.5\n')
    env.config_path.write_text(text, encoding="utf-8")
    final = env.run("apply", "--yes", timeout=300)
    locked = [name for name, state in env.terminals.items() if state.lock_uid is not None]
    if final.returncode == 0 or not locked:
        return final
    assert "syncd unlock" in final.stdout, final.stdout[-2000:]
    for name in locked:
        unlocked = env.run("unlock", name, "--yes")
        assert unlocked.returncode == 0, unlocked.stdout + unlocked.stderr
    return env.run("apply", "--yes", timeout=300)


def test_kill_minus_nine_at_random_points_then_converge(syncd_env: SyncdEnv) -> None:
    seed = random.randrange(1_000_000)
    print(f"crash test seed: {seed}")
    rng = random.Random(seed)
    syncd_env.slow_terminals(latency_ms=60)
    kills = kill_apply_mid_run(syncd_env, rng, 4)
    apply_demo_changes(syncd_env.csv_path)
    kills += kill_apply_mid_run(syncd_env, rng, 3)
    assert kills == 7, "a run ended before its kill: slow the terminals more"
    final = final_apply(syncd_env)
    assert final.returncode == 0, final.stdout[-2000:] + final.stderr[-2000:]
    assert syncd_env.run("plan", "--check").returncode == 0
    assert_terminals_match_hr(syncd_env, leavers_may_be_absent=True)
    for name, state in syncd_env.terminals.items():
        assert state.lock_uid is None, name
        assert_never_added_twice(name, state)
    # The ledger agrees with each terminal: one ok record per user it holds, no other.
    engine = sa.create_engine(syncd_env.ledger_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT target, person_key, state FROM target_records")).all()
    engine.dispose()
    for target, state in syncd_env.terminals.items():
        mine = {(k, s) for t, k, s in rows if t == target}
        assert mine == {(k, "ok") for k in state.subjects}, target


def test_kill_minus_nine_with_a_clue_target_in_the_mix(syncd_clue_env: ClueEnv) -> None:
    clue, env = syncd_clue_env, syncd_clue_env.env
    paced = [
        "min_interval_ms = 200" if line.startswith("min_interval_ms") else line
        for line in clue_target_lines(clue.server.url, clue.key_file)
    ]
    # 40 creates take > 8 s, far more than a run does before its kill (at most 5 outcomes
    # past its start), so every kill lands mid-run, in the cloud too.
    clue.use_target(*paced)
    clue.state.duplicate_keys = "accept"  # nothing but syncd's lookup stops a second auth
    seed = random.randrange(1_000_000)
    print(f"crash test seed: {seed}")
    rng = random.Random(seed)
    env.slow_terminals(latency_ms=100)
    kills = kill_apply_mid_run(env, rng, 3)
    changes = apply_demo_changes(env.csv_path)
    kills += kill_apply_mid_run(env, rng, 3)
    assert kills == 6, "a run ended before its kill: slow the targets more"
    final = final_apply(env)
    assert final.returncode == 0, final.stdout[-2000:] + final.stderr[-2000:]
    assert env.run("plan", "--check").returncode == 0
    assert_terminals_match_hr(env, leavers_may_be_absent=True)
    rows = {r["employee_id"]: r for r in read_people_csv(env.csv_path)}
    active = {k for k, r in rows.items() if r["status"] == "active"}
    auths = {a.key: a for a in clue.state.auths.values()}
    # One auth per person (though the cloud accepts a second auth with the same user.key):
    # every active person is there and active; a leaver is inactive, or absent if never
    # pushed.
    assert len(auths) == len(clue.state.auths) and active <= set(auths) <= set(rows)
    for key, auth in auths.items():
        assert auth.active is (rows[key]["status"] == "active"), key
    assert changes.terminated not in auths or auths[changes.terminated].active is False
    held = ok_rows(clue)
    assert {k: int(v) for k, v in held.items()} == {k: a.auth_id for k, a in auths.items()}
