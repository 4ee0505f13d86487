"""The shipped systemd units: `systemd-analyze verify` passes and the exposure is ≤ 2.0.

verify checks that ExecStart= is executable: the units name /usr/local/bin/syncd, so
they are verified as copies whose ExecStart points to a stub in the test's temp dir.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.services import skip_or_fail

UNITS = Path(__file__).resolve().parents[2] / "systemd"
NAMES = ("syncd.service", "syncd-plan.service", "syncd-plan.timer")


@pytest.fixture
def analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        skip_or_fail("systemd-analyze is not installed (Debian package systemd)")
    assert found is not None
    return found


def test_units_verify(analyze: str, tmp_path: Path) -> None:
    stub = tmp_path / "syncd"
    stub.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    stub.chmod(0o755)
    copies = []
    for name in NAMES:
        text = (UNITS / name).read_text(encoding="utf-8")
        copy = tmp_path / name
        copy.write_text(text.replace("/usr/local/bin/syncd", str(stub)), encoding="utf-8")
        copies.append(str(copy))
    done = subprocess.run([analyze, "verify", *copies], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "syncd" not in done.stderr, done.stderr  # no warning about our units


def assert_exposure_at_most_two(analyze: str, unit: Path) -> None:
    """Assert `systemd-analyze security` rates the unit file `unit` 2.0 ("OK") or better."""
    done = subprocess.run(
        [analyze, "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)
    assert found, done.stdout[-2000:] + done.stderr
    assert float(found.group(1)) <= 2.0, done.stdout[-3000:]


@pytest.mark.parametrize("name", ["syncd.service", "syncd-plan.service"])
def test_exposure_is_at_most_two(analyze: str, name: str) -> None:
    assert_exposure_at_most_two(analyze, UNITS / name)


def test_the_drop_directory_group_is_made_and_given_to_both_services() -> None:
    sysusers = (UNITS / "sysusers.d" / "syncd.conf").read_text(encoding="utf-8")
    tmpfiles = (UNITS / "tmpfiles.d" / "syncd.conf").read_text(encoding="utf-8")
    assert re.search(r"^g\s+syncd-import\s", sysusers, re.M)
    assert re.search(r"^d\s+/var/lib/syncd-import\s+2770\s+root\s+syncd-import", tmpfiles, re.M)
    for name in ("syncd.service", "syncd-plan.service"):
        unit = (UNITS / name).read_text(encoding="utf-8")
        assert re.search(r"^SupplementaryGroups=syncd-import$", unit, re.M), name


@pytest.mark.parametrize("name", ["syncd.service", "syncd-plan.service"])
def test_credentials_come_from_the_credential_store_so_a_missing_one_is_skipped(
    name: str,
) -> None:
    # systemd 252 fails a unit whose LoadCredential= names a missing absolute path, but
    # skips a missing credential-store name (a PATH without "/"): every secret is optional.
    unit = (UNITS / name).read_text(encoding="utf-8")
    loads = re.findall(r"^LoadCredential=([\w.-]+):(\S+)$", unit, re.M)
    assert {cred for cred, _ in loads} == {
        "ldap-password",
        "clue-api-key",
        "template-key",
        "pin-key",
    }
    for credential, path in loads:
        assert path == f"syncd.{credential}"
