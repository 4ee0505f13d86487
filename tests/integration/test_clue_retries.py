"""Creates whose answers are lost, through the CLI, on SQLite and PostgreSQL.

The engine retries a temporary failure within the run (backoff) and a failed record on
later runs; neither may make a second CLUe auth, whether the emulator refuses a
duplicate `user.key` or accepts it. Each test ends converged: one auth per person, the
ledger's remote ids are those auths, and `plan --check` has nothing to do.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from syncd.emulators.hr_sample import read_people_csv
from syncd.ledger.schema import target_records
from tests.fixtures.clue_env import CLUE_TARGET, ClueEnv
from tests.integration.test_clue_convergence import ok_rows

pytestmark = pytest.mark.slow
CLOUD_ONLY = ("apply", "--yes", "--target", "cloud")


def assert_one_auth_each(clue: ClueEnv) -> None:
    keys = [r["employee_id"] for r in read_people_csv(clue.env.csv_path)]
    held = [a.key for a in clue.state.auths.values()]
    assert sorted(held) == sorted(keys)  # every person, none twice
    assert ok_rows(clue) == {a.key: str(a.auth_id) for a in clue.state.auths.values()}
    check = clue.env.run("plan", "--check", "--target", "cloud")
    assert check.returncode == 0, check.stdout


def states(clue: ClueEnv) -> dict[str, str]:
    engine = sa.create_engine(clue.env.ledger_url)
    try:
        with engine.connect() as conn:
            query = sa.select(target_records.c.person_key, target_records.c.state).where(
                target_records.c.target == CLUE_TARGET
            )
            return {key: state for key, state in conn.execute(query)}
    finally:
        engine.dispose()


@pytest.mark.parametrize("duplicates", ["refuse", "accept"])
def test_lost_create_answers_are_retried_within_the_run(
    syncd_clue_env: ClueEnv, duplicates: str
) -> None:
    clue = syncd_clue_env
    clue.state.duplicate_keys = duplicates
    clue.state.lose_answers(3, method="POST", how="drop")
    clue.state.lose_answers(2, method="POST", how="503")
    applied = clue.env.run(*CLOUD_ONLY)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert clue.state.lost_answers == []  # every loss happened
    assert_one_auth_each(clue)


@pytest.mark.parametrize("duplicates", ["refuse", "accept"])
def test_a_create_failed_in_one_run_is_found_by_the_next(
    syncd_clue_env: ClueEnv, duplicates: str
) -> None:
    clue = syncd_clue_env
    clue.state.duplicate_keys = duplicates
    # The first create is carried out, its answer lost; so are the answers of the
    # in-run retries (updates of the auth they find): the run records a failed create.
    clue.state.lose_answers(1, method="POST", how="drop")
    clue.state.lose_answers(4, method="PUT", how="503")
    first = clue.env.run(*CLOUD_ONLY)
    assert first.returncode != 0, first.stdout
    failed = [key for key, state in states(clue).items() if state == "failed"]
    assert len(failed) == 1
    assert len(clue.state.auths_by_key(failed[0])) == 1  # CLUe holds it all the same
    second = clue.env.run(*CLOUD_ONLY)
    assert second.returncode == 0, second.stdout + second.stderr
    assert_one_auth_each(clue)
