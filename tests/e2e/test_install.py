"""docs/service.md's install steps, run as written in a temporary root (needs root).

The two marked ```sh blocks of docs/service.md (the install steps and HR's export job) are
run with bash. `/etc`, `/opt`, `/usr/local` and `/var/lib` in them are moved under a
temporary root (as the installed `syncd.toml` is: the admin's "then edit it"). What needs
systemd as PID 1 is stood in for by scripts on PATH: `systemctl` and `apt-get` do
nothing, `systemd-sysusers`/`systemd-tmpfiles` run with `--root=`, and `systemd-run -p
DynamicUser=yes ...` runs the command with `setpriv` as an unprivileged uid that holds
only the `SupplementaryGroups=` group, in a `$STATE_DIRECTORY` made for that uid, as
systemd does. `pip install .` runs for real (not editable): the built-in mappings must
come from the installed package. Then the installed units are checked with
`systemd-analyze verify` and `security --offline=yes`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.test_systemd_units import assert_exposure_at_most_two
from tests.fixtures.services import skip_or_fail

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "service.md"
INSTALL_MARKER = "# syncd install steps (tests/e2e/test_install.py"
HR_MARKER = "# HR export job (tests/e2e/test_install.py"
EDIT_LINE = "# then edit it"
SERVICE_UID = 61184  # the first uid systemd hands out to a DynamicUser=
HR_UID = 61185  # HR's export account, a member of syncd-import
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MOVED = re.compile(
    r"(?:(?<=sqlite:///)|(?<![\w./$-]))/(etc|opt|usr/local|var/lib)(?=[/\s'\"]|$)", re.M
)

PEOPLE = """\
employee_id,first_name,last_name,email,department,status,start_date,end_date,badge_number,pin
E1001,Ada,Lovelace,ada@example.org,Engineering,active,2020-01-01,,2000021,4711
E1002,Grace,Hopper,grace@example.org,Engineering,active,2020-01-01,,2000022,
E1003,Alan,Turing,alan@example.org,Research,active,2020-01-01,,2000023,
"""

FAKE_SYSTEMD_RUN = r"""#!/bin/bash
# Stands in for `systemd-run --wait --pipe -p DynamicUser=yes -p ... CMD`.
set -euo pipefail
groups=(--clear-groups)
state=""
while [ $# -gt 0 ]; do
  case "$1" in
    --wait|--pipe|--quiet) shift ;;
    -p) prop=$2; shift 2
        case "$prop" in
          DynamicUser=yes|User=syncd) ;;
          StateDirectory=*) state="$ROOT/var/lib/${prop#StateDirectory=}" ;;
          SupplementaryGroups=*)
            name=${prop#SupplementaryGroups=}
            gid=$(awk -F: -v g="$name" '$1 == g {print $3}' "$ROOT/etc/group")
            [ -n "$gid" ] || { echo "no group ${prop#*=} in $ROOT/etc/group" >&2; exit 98; }
            groups=(--groups "$gid") ;;
          *) echo "fake systemd-run: property $prop not stood in for" >&2; exit 99 ;;
        esac ;;
    *) break ;;
  esac
done
[ -n "$state" ] || { echo "fake systemd-run: no StateDirectory=" >&2; exit 97; }
install -d -m 0700 -o "$SERVICE_UID" -g "$SERVICE_UID" "$state"
cd "$state"
exec setpriv --reuid "$SERVICE_UID" --regid "$SERVICE_UID" "${groups[@]}" -- \
    env -i PATH=/usr/bin:/bin STATE_DIRECTORY="$state" HOME="$state" "$@"
"""


@dataclass
class Installed:
    """The temporary root after the documented steps, and what they printed."""

    root: Path
    import_gid: int
    plan_output: str

    def syncd(self, *args: str, uid: int, groups: list[int]) -> subprocess.CompletedProcess[str]:
        """Run the installed syncd as `uid` with `groups` (none: --clear-groups)."""
        state = self.root / "var/lib/syncd"
        group_args = ["--groups", ",".join(map(str, groups))] if groups else ["--clear-groups"]
        return subprocess.run(
            [
                "setpriv",
                "--reuid",
                str(uid),
                "--regid",
                str(uid),
                *group_args,
                "--",
                "env",
                "-i",
                "PATH=/usr/bin:/bin",
                f"STATE_DIRECTORY={state}",
                str(self.root / "usr/local/bin/syncd"),
                *args,
                "--config",
                str(self.root / "etc/syncd/syncd.toml"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd="/",
        )


def marked_block(marker: str) -> str:
    """Return the ```sh block of docs/service.md whose first line starts with `marker`."""
    blocks = re.findall(r"^```sh\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.M | re.S)
    found = [block for block in blocks if block.startswith(marker)]
    assert len(found) == 1, f"docs/service.md: one ```sh block starting {marker!r} expected"
    return found[0]


def moved(text: str, root: Path) -> str:
    """Return `text` with the system paths syncd's install touches moved under `root`."""
    return MOVED.sub(lambda m: f"{root}/{m.group(1)}", text)


def run_bash(script: str, env: dict[str, str], user: list[str] | None = None) -> str:
    command = [*(user or []), "bash", "-euo", "pipefail", "-c", script]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{script}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    return done.stdout


def fake_commands(directory: Path) -> None:
    """Write the stand-ins for what needs systemd as PID 1 (module doc) to `directory`."""
    scripts = {
        "systemd-run": FAKE_SYSTEMD_RUN,
        "systemctl": '#!/bin/sh\necho "(test: systemctl $*: skipped)"\n',
        "apt-get": '#!/bin/sh\necho "(test: apt-get $*: skipped)"\n',
        "systemd-sysusers": '#!/bin/sh\nexec /usr/bin/systemd-sysusers --root="$ROOT" "$@"\n',
        "systemd-tmpfiles": '#!/bin/sh\nexec /usr/bin/systemd-tmpfiles --root="$ROOT" "$@"\n',
    }
    directory.mkdir()
    for name, text in scripts.items():
        (directory / name).write_text(text, encoding="utf-8")
        (directory / name).chmod(0o755)


def check_host() -> None:
    if os.geteuid() != 0:
        skip_or_fail("the install test runs as root (setpriv, chown)")
    for tool in ("setpriv", "systemd-analyze", "systemd-sysusers", "systemd-tmpfiles"):
        if shutil.which(tool) is None:
            skip_or_fail(f"{tool} is not installed (Debian packages util-linux, systemd)")
    if not Path("/usr/bin/python3").exists():
        skip_or_fail("/usr/bin/python3 (Debian's python3, python3-venv) is not installed")


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    check_host()
    base = Path(tempfile.mkdtemp(prefix="syncd-install-", dir="/tmp"))
    base.chmod(0o755)  # the unprivileged uids must reach the root below it
    try:
        yield install(base)
    finally:
        shutil.rmtree(base)


def install(base: Path) -> Installed:
    """Run the documented steps in `base/root` (module doc); return what they left."""
    root = base / "root"
    for skeleton in ("etc/systemd/system", "opt", "usr/local/bin", "var/lib"):
        (root / skeleton).mkdir(parents=True)
    fake_commands(base / "fakebin")
    sample = base / "export.csv"
    sample.write_text(PEOPLE, encoding="utf-8")
    sample.chmod(0o644)
    env = {
        "PATH": f"{base / 'fakebin'}:{DEBIAN_PATH}",
        "ROOT": str(root),
        "SERVICE_UID": str(SERVICE_UID),
        "HOME": str(base),
        "LANG": "C.UTF-8",
    }
    for name in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CERT"):
        if name in os.environ:
            env[name] = os.environ[name]
    steps = moved(marked_block(INSTALL_MARKER), root)
    cut = steps.index("\n", steps.index(EDIT_LINE)) + 1
    run_bash(steps[:cut], env)
    # The admin's "then edit it": the example's paths, moved under the root.
    config = root / "etc/syncd/syncd.toml"
    config.write_text(moved(config.read_text(encoding="utf-8"), root), encoding="utf-8")
    gid = import_gid(root)
    hr_job = f'export_people() {{ cat "{sample}"; }}\n' + moved(marked_block(HR_MARKER), root)
    hr_user = ["setpriv", "--reuid", str(HR_UID), "--regid", str(HR_UID), "--groups", str(gid)]
    run_bash(hr_job, env, user=hr_user)
    output = run_bash(steps[cut:], env)
    return Installed(root=root, import_gid=gid, plan_output=output)


def import_gid(root: Path) -> int:
    for line in (root / "etc/group").read_text(encoding="utf-8").splitlines():
        name, _, gid, _ = line.split(":", 3)
        if name == "syncd-import":
            return int(gid)
    raise AssertionError("systemd-sysusers made no group syncd-import")


def test_the_documented_steps_install_plan_and_read_everything_as_the_service_user(
    installed: Installed,
) -> None:
    # Step 6's plan ran as the service's uid: it read the config, the built-in mapping
    # and HR's CSV, and planned each person for the example's terminal.
    for name in ("Lovelace", "Hopper", "Turing"):
        assert name in installed.plan_output, installed.plan_output
    assert "lobby" in installed.plan_output
    ledger = installed.root / "var/lib/syncd/ledger.db"
    assert ledger.stat().st_uid == SERVICE_UID  # db upgrade made it as the service's uid


def test_syncd_is_installed_as_a_package_with_its_mappings(installed: Installed) -> None:
    site = next((installed.root / "opt/syncd/lib").glob("python3*/site-packages"))
    assert (site / "syncd/_data/mappings/hr-csv.toml").is_file()
    assert not list(site.glob("*syncd*.pth")), "an editable install: the test proves nothing"


def test_permissions_are_those_the_doc_explains(installed: Installed) -> None:
    root = installed.root
    assert (root / "etc/syncd").stat().st_mode & 0o7777 == 0o755
    assert (root / "etc/syncd/syncd.toml").stat().st_mode & 0o7777 == 0o644
    assert (root / "etc/credstore").stat().st_mode & 0o7777 == 0o700
    drop = (root / "var/lib/syncd-import").stat()
    assert (drop.st_mode & 0o7777, drop.st_uid, drop.st_gid) == (0o2770, 0, installed.import_gid)
    people = (root / "var/lib/syncd-import/people.csv").stat()
    assert (people.st_mode & 0o777, people.st_uid, people.st_gid) == (
        0o640,
        HR_UID,
        installed.import_gid,
    )
    assert not (root / "var/lib/syncd-import/.people.csv.part").exists()  # renamed


def test_without_the_import_group_the_service_cannot_read_the_csv(installed: Installed) -> None:
    done = installed.syncd("plan", uid=SERVICE_UID, groups=[])  # no SupplementaryGroups=
    assert done.returncode == 4, done.stdout + done.stderr
    assert "people.csv: Permission denied" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_the_service_user_plans_again_with_the_group(installed: Installed) -> None:
    done = installed.syncd("plan", "--check", uid=SERVICE_UID, groups=[installed.import_gid])
    assert done.returncode == 1, done.stdout + done.stderr  # changes pending: 3 people


def test_a_config_the_service_user_cannot_read_is_a_config_error(installed: Installed) -> None:
    config = installed.root / "etc/syncd/syncd.toml"
    config.chmod(0o640)  # the mode the old instructions gave it
    try:
        done = installed.syncd("plan", uid=SERVICE_UID, groups=[installed.import_gid])
    finally:
        config.chmod(0o644)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "syncd.toml: cannot read: Permission denied" in done.stdout + done.stderr


def installed_units(installed: Installed, directory: Path) -> list[Path]:
    """Copies of the installed units whose ExecStart= is the installed syncd."""
    units = []
    for name in ("syncd.service", "syncd-plan.service", "syncd-plan.timer"):
        text = (installed.root / "etc/systemd/system" / name).read_text(encoding="utf-8")
        copy = directory / name
        copy.write_text(
            text.replace("/usr/local/bin/syncd", str(installed.root / "usr/local/bin/syncd")),
            encoding="utf-8",
        )
        units.append(copy)
    return units


def test_the_installed_units_verify(installed: Installed, tmp_path: Path) -> None:
    units = installed_units(installed, tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "syncd" not in done.stderr, done.stderr


def test_the_installed_service_is_rated_ok_by_systemd_analyze_security(
    installed: Installed, tmp_path: Path
) -> None:
    assert_exposure_at_most_two("systemd-analyze", installed_units(installed, tmp_path)[0])
