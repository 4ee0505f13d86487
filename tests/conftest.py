"""Shared test fixtures. Fixture modules per subsystem live in tests/fixtures/.

A test that needs a service this machine lacks calls `tests.fixtures.services.skip_or_fail`:
it skips locally, and fails when SYNCD_REQUIRE_SERVICES=1 (CI), so a missing dependency
can never hide behind a skip.
"""

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.ldap",
    "tests.fixtures.clue",
    "tests.fixtures.ef45",
    "tests.fixtures.syncd_env",
    "tests.fixtures.clue_env",
]
