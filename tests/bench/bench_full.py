"""Full reads, whole process (issue 18, point 3): `syncd plan` run as a command.

Every figure is the median of SYNCD_BENCH_FULL_RUNS (default 3) runs of a fresh
`python -m syncd …` child, timed from outside: wall (spawn to exit), CPU (user + system
of that child) and peak RSS (the child's own ru_maxrss, from `os.wait4`, KiB → MiB), all
taken by a small launcher process that spawns the child: Linux counts the forking
process's RSS into a child's ru_maxrss, so a child forked straight from this bench
process, grown by a fill, would report that instead. Cases of one site run interleaved,
one of each per round, after one warm-up run each (bytecode caches written; the first
plan also creates the PIN key).

Rows, on each ledger of SYNCD_BENCH_FULL_LEDGERS (default "sqlite,postgresql"; a
PostgreSQL ledger is a fresh schema of 127.0.0.1:5432/test, dropped afterwards):

1. LDAP, 10 000 users all missing: a real slapd (tests.fixtures.ldap, entries slapadded),
   the shipped openldap mapping (bound as the rootdn, page size 1000), one EF-45 target,
   an empty migrated ledger: `syncd plan`. Targets ≤ 1.0 s and ≤ 80 MiB. Anchors, run
   interleaved with it: `ldapsearch` of the same entries (paged 1000, output to
   /dev/null: the read floor) and `python -c pass` (the interpreter's floor).
2. LDAP, 10 000 users, no-op: the same directory after one real `syncd apply --yes`
   against an EF-45 emulator (syncd.emulators), which is then stopped (a plan does not
   contact terminals: it would fail or stall if it did): `syncd plan --full`. Asserted a
   true no-op (`plan --full --check` exits 0). Targets ≤ 1.0 s and ≤ 80 MiB.
3. CSV, 10 000 and 100 000 people × 10 EF-45 targets, no-op: the shipped hr-csv mapping
   over syncd.emulators.hr_sample rows; the ledger settled (in a child process) through
   the product's own write path (read, save the people, plan each target, record every
   create as applied with `Ledger.record_outcomes`, as an apply with instant terminals
   would) and asserted a true no-op (`plan --full --check` exits 0): `syncd plan --full`
   (a CSV source is always read in full; `--full` only makes it explicit). Targets at
   100 000: ≤ 5 s and ≤ 1 GB; then the ratio of the wall medians 100 k / 10 k ≤ 11.

SYNCD_BENCH_FULL_SCALE (default 1) multiplies every size, e.g. 0.1 for a smoke run (the
targets stay those of the full sizes). The 10 000-people CSV row has no target of its
own (its figure feeds the ratio). The bench process's own memory is not in any figure.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from syncd.config import load_config, shipped_path
from syncd.emulators.ef45 import create_ef45_app
from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.hr_sample import sample_rows, write_people_csv
from syncd.emulators.server import EmulatorServer
from syncd.engine.run import Syncer
from syncd.ledger.outcomes import Outcome
from syncd.model import ActionOutcome, Op, RunOutcome
from tests.bench.bench_start import TinySite
from tests.fixtures.ldap import (
    ADMIN_DN,
    BASE_DN,
    PASSWORDS,
    Slapd,
    slapd_available,
    start_slapd,
    write_people_ldif,
)

RUNS = int(os.environ.get("SYNCD_BENCH_FULL_RUNS", "3"))
SCALE = float(os.environ.get("SYNCD_BENCH_FULL_SCALE", "1"))
LEDGERS = os.environ.get("SYNCD_BENCH_FULL_LEDGERS", "sqlite,postgresql").split(",")
POSTGRES_URL = os.environ.get(
    "SYNCD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
LDAP_USERS = max(1, round(10_000 * SCALE))
CSV_PEOPLE = (max(1, round(10_000 * SCALE)), max(1, round(100_000 * SCALE)))
CSV_TARGETS = 10
LDAP_SECONDS, LDAP_MIB = 1.0, 80.0
CSV_SECONDS, CSV_MIB = 5.0, 1024.0
RATIO = 11.0
PASSWORD_ENV = "SYNCD_BENCH_FULL_LDAP_PASSWORD"
SYNCD = [sys.executable, "-m", "syncd"]
PEOPLE_DN = f"ou=people,{BASE_DN}"
FILTER = "(objectClass=inetOrgPerson)"


@dataclass(frozen=True)
class Sample:
    """One child process: wall and CPU seconds, peak RSS in MiB."""

    wall: float
    cpu: float
    rss_mib: float


@dataclass(frozen=True)
class Site(TinySite):
    """A configured site: run `syncd` with `environment` in `workdir` (`TinySite.syncd`,
    here unchecked and with a long timeout: a 100 000-people plan takes seconds)."""

    @property
    def config(self) -> Path:
        return self.workdir / "syncd.toml"

    def syncd(
        self, *args: str, check: bool = False, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        """Run `python -m syncd ARGS` here; return the completed process (not checked)."""
        return super().syncd(*args, check=check, timeout=timeout)

    def must(self, *args: str) -> None:
        """Run `syncd ARGS`; raise RuntimeError with its output unless it exits 0."""
        done = self.syncd(*args)
        if done.returncode != 0:
            raise RuntimeError(
                f"syncd {' '.join(args)} exited {done.returncode}:\n"
                f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )


# Spawns the measured command from a small process and prints its wall, CPU and peak RSS.
# Linux carries the pre-exec address space's high-water RSS into the child's ru_maxrss, so
# a child forked straight from this bench process (hundreds of MiB after a big fill)
# would report at least that much. This launcher is ~10 MiB.
LAUNCHER = """
import os, sys, time
out = os.open(os.devnull, os.O_WRONLY)
err = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
actions = [(os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, err, 2)]
started = time.perf_counter()
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ, file_actions=actions)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
cpu = usage.ru_utime + usage.ru_stime
print(os.waitstatus_to_exitcode(status), wall, cpu, usage.ru_maxrss)
"""


def measure(command: list[str], site: Site) -> Sample:
    """Run `command` at `site` once (output discarded, errors kept in a file); return its
    wall, CPU (user + system) and peak RSS, as the small `LAUNCHER` process measured them
    around the spawn and `os.wait4`. Raise RuntimeError unless it exits 0."""
    errors = site.workdir / "child.err"
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(errors), *command],
        cwd=site.workdir,
        env=site.environment,
        capture_output=True,
        text=True,
        check=True,
    )
    code, wall, cpu, rss_kib = done.stdout.split()
    if int(code) != 0:
        raise RuntimeError(f"{command} exited {code}: {errors.read_text()[-2000:]}")
    return Sample(float(wall), float(cpu), int(rss_kib) / 1024)


def interleaved(cases: dict[str, list[str]], site: Site) -> dict[str, list[Sample]]:
    """Run each case once to warm up, then RUNS rounds of one run of each case."""
    for command in cases.values():
        measure(command, site)
    samples: dict[str, list[Sample]] = {name: [] for name in cases}
    for _ in range(RUNS):
        for name, command in cases.items():
            samples[name].append(measure(command, site))
    return samples


def _median(samples: list[Sample], field: str) -> float:
    values: list[float] = [getattr(s, field) for s in samples]
    return statistics.median(values)


def figure_rows(
    case: str,
    samples: list[Sample],
    seconds: float | None,
    mib: float,
    anchor: str = "",
    **details: Any,
) -> list[dict[str, Any]]:
    """Return the time row and the memory row of one measured case."""
    wall, cpu, rss = (_median(samples, f) for f in ("wall", "cpu", "rss_mib"))
    spread = f"{min(s.wall for s in samples):.2f}–{max(s.wall for s in samples):.2f} s"
    return [
        {
            "case": case,
            "figure": f"{wall:.2f} s (CPU {cpu:.2f} s)",
            "target": f"≤ {seconds:g} s" if seconds is not None else "report",
            "anchor": anchor,
            "ok": seconds is None or wall <= seconds,
            "wall_range": spread,
            "runs": len(samples),
        }
        | details,
        {
            "case": f"{case}: peak RSS",
            "figure": f"{rss:.0f} MiB",
            "target": f"≤ {mib:g} MiB",
            "ok": rss <= mib,
            "rss_range": f"{min(s.rss_mib for s in samples):.0f}–"
            f"{max(s.rss_mib for s in samples):.0f} MiB",
        },
    ]


# -- sites ---------------------------------------------------------------------------


@contextmanager
def ledger_url(kind: str, workdir: Path) -> Iterator[str]:
    """Yield the URL of an empty ledger of `kind` ("sqlite" or "postgresql"); a
    PostgreSQL one is a fresh schema, dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'ledger.db'}"
        return
    schema = f"bench_full_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        sep = "&" if "?" in POSTGRES_URL else "?"
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _environment(config: Path) -> dict[str, str]:
    """This process's environment as an installed syncd runs in (bytecode caches used),
    with the config and the LDAP password."""
    kept = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return kept | {"SYNCD_CONFIG": str(config), PASSWORD_ENV: PASSWORDS[ADMIN_DN]}


def _targets_toml(urls: list[str]) -> list[str]:
    lines: list[str] = []
    for number, url in enumerate(urls):
        lines += [f"[targets.door{number}]", 'type = "ef45"', f'url = "{url}"', ""]
    return lines


def write_site(workdir: Path, url: str, source: list[str], target_urls: list[str]) -> Site:
    """Write syncd.toml (ledger `url`, the source's lines, one EF-45 target per URL),
    migrate the ledger; return the site."""
    config = workdir / "syncd.toml"
    lines = ["[ledger]", f'url = "{url}"', "", *source, "", *_targets_toml(target_urls)]
    config.write_text("\n".join(lines), encoding="utf-8")
    site = Site(workdir, _environment(config))
    site.must("db", "upgrade")
    return site


def ldap_source_toml(server: Slapd) -> list[str]:
    mapping = shipped_path("mappings", "openldap.toml")
    return [
        "[sources.dir]",
        'type = "ldap"',
        f'url = "{server.url}"',
        f'bind_dn = "{ADMIN_DN}"',
        f'password = {{ env = "{PASSWORD_ENV}" }}',
        f'base_dn = "{PEOPLE_DN}"',
        f'filter = "{FILTER}"',
        "page_size = 1000",
        "read_timeout_s = 120",
        f'mapping = "{mapping}"',
    ]


def csv_source_toml(path: Path) -> list[str]:
    mapping = shipped_path("mappings", "hr-csv.toml")
    return ["[sources.hr]", 'type = "csv"', f'path = "{path}"', f'mapping = "{mapping}"']


def dead_urls(count: int) -> list[str]:
    """EF-45 URLs nothing listens on: a plan that contacted a terminal would fail."""
    return [f"http://127.0.0.1:{9 + n}" for n in range(count)]


def assert_noop(site: Site) -> None:
    """Raise RuntimeError unless `syncd plan --full --check` says nothing is to do."""
    done = site.syncd("plan", "--full", "--check")
    if done.returncode != 0 or "nothing to do" not in done.stdout:
        raise RuntimeError(f"not a no-op (exit {done.returncode}):\n{done.stdout[-2000:]}")


def settle(config: Path) -> int:
    """Leave the ledger as a complete apply with instant terminals would: the people
    saved, every create of every target recorded applied through the product's write
    path (`Ledger.record_outcomes`), the run finished ok. Return the records written.

    One target is planned at a time (a plan of 1 000 000 creates at once needs GBs)."""
    syncer = Syncer.from_config(load_config(config))
    try:
        reading = syncer.read(full=True)
        recorder = syncer.recorder
        run_id = recorder.start("cli", reading)
        recorder.save_people(reading)
        written: dict[str, int] = {}
        for name, target in syncer.targets.items():
            one = dataclasses.replace(syncer, targets={name: target})
            plan = one.plan(reading)
            if any(a.op is not Op.CREATE for a in plan.actions):
                raise RuntimeError(f"{name}: an empty ledger's plan holds more than creates")
            outcomes = [
                Outcome(run_id, a, ActionOutcome.APPLIED, reading.now, remote_id=a.person_key)
                for a in plan.actions
            ]
            for start in range(0, len(outcomes), 10_000):
                syncer.ledger.record_outcomes(outcomes[start : start + 10_000])
            written[name] = len(outcomes)
        counts = {name: {"applied": n} for name, n in written.items()}
        syncer.ledger.finish_run(run_id, outcome=RunOutcome.OK, counts=counts, now=reading.now)
        return sum(written.values())
    finally:
        syncer.close()


def settle_apart(site: Site) -> int:
    """`settle` in a child process (it grows to GBs at 100 000 × 10; this one stays small)."""
    code = f"from tests.bench.bench_full import settle; print(settle({str(site.config)!r}))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        env=site.environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"settle failed: {done.stderr[-2000:]}")
    return int(done.stdout.split()[-1])


# -- cases ---------------------------------------------------------------------------


def ldap_rows(server: Slapd, ledger: str, label: str) -> list[dict[str, Any]]:
    """Rows 1 and 2 on one ledger kind, against a slapd holding LDAP_USERS people."""
    with (
        tempfile.TemporaryDirectory(prefix="syncd-bench-full-") as name,
        ledger_url(ledger, Path(name)) as url,
    ):
        workdir = Path(name)
        emulator = EmulatorServer(create_ef45_app(Ef45State())).start()
        try:
            site = write_site(workdir, url, ldap_source_toml(server), [emulator.url])
            ldapsearch = [
                "ldapsearch", "-x", "-LLL", "-H", server.url, "-D", ADMIN_DN,
                "-w", PASSWORDS[ADMIN_DN], "-b", PEOPLE_DN, "-E", "pr=1000/noprompt",
                FILTER,
            ]  # fmt: skip
            cases = {
                "plan": [*SYNCD, "plan"],
                "ldapsearch": ldapsearch,
                "python": [sys.executable, "-c", "pass"],
            }
            missing = interleaved(cases, site)
            started = time.perf_counter()
            site.must("apply", "--yes")
            apply_s = time.perf_counter() - started
        finally:
            emulator.stop()
        assert_noop(site)
        noop = interleaved({"plan --full": [*SYNCD, "plan", "--full"]}, site)
    floor = (
        f"ldapsearch {_median(missing['ldapsearch'], 'wall'):.3f} s; "
        f"python -c pass {_median(missing['python'], 'wall'):.3f} s"
    )
    users = f"{LDAP_USERS:,} LDAP users"
    return [
        *figure_rows(
            f"{label}: {users} all missing, syncd plan",
            missing["plan"],
            LDAP_SECONDS,
            LDAP_MIB,
            anchor=floor,
            ldapsearch_cpu=f"{_median(missing['ldapsearch'], 'cpu'):.3f} s",
        ),
        *figure_rows(
            f"{label}: {users} no-op, syncd plan --full",
            noop["plan --full"],
            LDAP_SECONDS,
            LDAP_MIB,
            anchor=floor,
            settled_by=f"syncd apply --yes to an EF-45 emulator, {apply_s:.0f} s",
        ),
    ]


def csv_rows(ledger: str, label: str) -> list[dict[str, Any]]:
    """Row 3 on one ledger kind: a no-op `plan --full` at each CSV size, and the ratio."""
    rows: list[dict[str, Any]] = []
    walls: list[float] = []
    cpus: list[float] = []
    for count in CSV_PEOPLE:
        with (
            tempfile.TemporaryDirectory(prefix="syncd-bench-full-") as name,
            ledger_url(ledger, Path(name)) as url,
        ):
            workdir = Path(name)
            write_people_csv(workdir / "people.csv", sample_rows(count))
            source = csv_source_toml(workdir / "people.csv")
            site = write_site(workdir, url, source, dead_urls(CSV_TARGETS))
            started = time.perf_counter()
            records = settle_apart(site)
            settle_s = time.perf_counter() - started
            assert_noop(site)
            samples = interleaved({"plan --full": [*SYNCD, "plan", "--full"]}, site)["plan --full"]
        big = count == CSV_PEOPLE[-1]
        rows += figure_rows(
            f"{label}: CSV {count:,} people × {CSV_TARGETS} EF-45 no-op, syncd plan --full",
            samples,
            CSV_SECONDS if big else None,
            CSV_MIB,
            records=records,
            us_per_record=round(_median(samples, "wall") / records * 1e6, 2),
            settled_in=f"{settle_s:.0f} s",
        )
        walls.append(_median(samples, "wall"))
        cpus.append(_median(samples, "cpu"))
    ratio = walls[-1] / walls[0]
    rows.append(
        {
            "case": f"{label}: CSV cost ratio {CSV_PEOPLE[-1]:,} / {CSV_PEOPLE[0]:,} (wall)",
            "figure": f"{ratio:.1f}",
            "target": f"≤ {RATIO:g}",
            "ok": ratio <= RATIO,
            "cpu_ratio": f"{cpus[-1] / cpus[0]:.1f}",
        }
    )
    return rows


def run() -> list[dict[str, Any]]:
    """Measure rows 1–3 on each ledger; return the bench rows."""
    labels = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    kinds = [k for k in LEDGERS if k in labels]
    rows: list[dict[str, Any]] = []
    if slapd_available() and shutil.which("ldapsearch"):
        with tempfile.TemporaryDirectory(prefix="syncd-bench-full-slapd-") as name:
            ldif = write_people_ldif(Path(name) / "people.ldif", LDAP_USERS)
            server = start_slapd(Path(name) / "slapd", size_limit=1000, preload=ldif)
            try:
                for kind in kinds:
                    rows += ldap_rows(server, kind, labels[kind])
            finally:
                server.stop()
    else:
        rows.append({"case": "LDAP rows", "figure": "not run", "target": "slapd, ldapsearch",
                     "ok": False})  # fmt: skip
    for kind in kinds:
        rows += csv_rows(kind, labels[kind])
    return rows
