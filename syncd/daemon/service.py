"""`syncd run`: the daemon's life from start to stop.

Start: check the ledger schema and validate the config (schedules, mappings, targets),
start the HTTP listener and the scheduler, then tell systemd `READY=1`. The main thread
then loops every `standby_poll_s`: it takes or checks leadership (active/standby), puts
the jobs on the scheduler when it becomes active and takes them off when it loses the
lead, and handles a pending reload.

Access follows time as well as HR: after every reconcile (and on taking the lead) the
next access boundary of anyone in the ledger (a start or end of validity, or the day an
upcoming hire is created ahead) is queued as a one-off reconcile `access.boundary_grace_s`
after it, so a door opens or closes within seconds of the boundary, not at the next poll.

Signals only set flags, read by the main loop:
- SIGTERM / SIGINT: `STOPPING=1`, no new job starts, the stop (`engine.stopping.Stop`)
  cancels the job's requests in flight at once, its EF-45 sessions release their locks
  (best effort, within `apply.release_timeout_s`), its run is recorded as interrupted
  with the counts it reached, and the process exits within `stop_timeout_s` whatever
  the peers do (exit 1 if a job still ran then).

A metrics port already taken is one line and exit 3 (ConfigError) before READY=1.
- SIGHUP: reload the config file; one that fails validation is refused (logged with
  every problem) and the running config is kept. `ledger.url` cannot change by reload.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType

import sqlalchemy as sa

from syncd.config import Config, load_config
from syncd.daemon import jobs
from syncd.daemon.http import Hooks, Listener, parse_listen
from syncd.daemon.jobs import JobResult
from syncd.daemon.leader import Leadership, leadership_for
from syncd.daemon.metrics import DaemonMetrics
from syncd.daemon.notify import Notifier, Watchdog, watchdog_interval
from syncd.daemon.scheduler import JobRunner, Scheduler
from syncd.engine import stopping
from syncd.engine.factory import build_sources, build_targets
from syncd.engine.run import Syncer
from syncd.errors import ConfigError, SyncdError
from syncd.ledger import migrate
from syncd.ledger.store import create_ledger_engine

log = logging.getLogger(__name__)

RECONCILES = frozenset({"reconcile", "deep_reconcile"})
"""The jobs after which the next access boundary is looked up and queued."""
BOUNDARY_TRIGGER = "boundary"


def validate(config: Config) -> None:
    """Raise ConfigError if the daemon could not run `config` (schedules, mappings, targets)."""
    problems: list[str] = []
    checks: list[Callable[[], object]] = [
        lambda: jobs.triggers(config.daemon),
        lambda: build_sources(config),
        lambda: build_targets(config),
    ]
    if config.daemon.metrics_listen:
        checks.append(lambda: _listen(config.daemon.metrics_listen))
    for check in checks:
        try:
            check()
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))


def _listen(value: str) -> tuple[str, int]:
    try:
        return parse_listen(value)
    except ValueError as exc:
        raise ConfigError(f"daemon.metrics_listen: {exc}") from None


class Daemon:
    """One `syncd run` process."""

    def __init__(self, config_path: Path, config: Config, notifier: Notifier | None = None):
        self.config_path = config_path
        self.config = config
        self.notifier = notifier or Notifier()
        self.stop = stopping.Stop()
        self._wake = threading.Event()
        self._reload_asked = False
        self._told_standby = False
        self.probe: sa.Engine | None = None
        self.leadership: Leadership | None = None
        self.metrics = DaemonMetrics(lambda: self.probe, self._leading)
        self.runner = JobRunner({}, lambda: self.config, self.stop, self._job_done)
        self.scheduler = Scheduler(self.runner, config.daemon.misfire_grace_s)
        self.listener: Listener | None = None

    def _leading(self) -> bool:
        return self.leadership is not None and self.leadership.leading

    # start and stop -------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; return the exit code (1 if a job outlived the limit).

        Raise ConfigError or LedgerError before READY=1 if the daemon cannot start.
        """
        self._start()
        watchdog = self._start_watchdog()
        try:
            self._loop()
        finally:
            code = self._shutdown()
            if watchdog is not None:
                watchdog.stop()
        return code

    def _start(self) -> None:
        self.probe = create_ledger_engine(self.config.ledger.url)
        migrate.check_schema(self.probe)
        validate(self.config)
        self.runner.functions.update(jobs.available_jobs())
        self.leadership = leadership_for(self.config.ledger.url)
        listen = self.config.daemon.metrics_listen
        if listen:
            self.listener = self._listen(listen)
        self._install_signals()
        self.scheduler.start()
        log.info(
            "syncd daemon started",
            extra={
                "pid": os.getpid(),
                "config": str(self.config_path),
                "listen": listen or "-",
                "jobs": ",".join(sorted(self.runner.functions)),
            },
        )
        self.notifier.ready("started; waiting for leadership")

    def _listen(self, listen: str) -> Listener:
        """Start the HTTP listener; raise ConfigError if its address cannot be bound."""
        hooks = Hooks(self.metrics.registry, self.health, self.trigger)
        try:
            return Listener(hooks, listen).start()
        except OSError as exc:
            raise ConfigError(
                f"daemon.metrics_listen = {listen!r}: cannot listen there "
                "(the port is taken, or the address is not this host's)"
            ) from exc

    def _start_watchdog(self) -> Watchdog | None:
        interval = watchdog_interval()
        if interval is None or not self.notifier.enabled:
            return None
        return Watchdog(self.notifier, interval, lambda: self.scheduler.alive).start()

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stop.set(signal.Signals(signum).name)
        self._wake.set()

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self._reload_asked = True
        self._wake.set()

    def _loop(self) -> None:
        while not self.stop.is_set():
            if self._reload_asked:
                self._reload_asked = False
                self.reload()
            self._poll_leadership()
            self._wake.wait(self.config.daemon.standby_poll_s)
            self._wake.clear()

    def _shutdown(self) -> int:
        log.info("stopping: no new jobs; the requests in flight are cancelled")
        self.notifier.stopping()
        self.stop.set()
        self.scheduler.shutdown()
        limit = self.config.daemon.stop_timeout_s
        finished = self.runner.wait_idle(limit)
        if self.leadership is not None:
            self.leadership.release()
        if self.listener is not None:
            self.listener.stop()
        if self.probe is not None:
            self.probe.dispose()
        if not finished:
            log.error(
                "a job still runs after stop_timeout_s; exiting anyway",
                extra={"stop_timeout_s": limit},
            )
            return 1
        log.info("stopped")
        return 0

    # leadership and reload ------------------------------------------------------------

    def _poll_leadership(self) -> None:
        assert self.leadership is not None
        was = self.leadership.leading
        now = self.leadership.poll()
        if now and not was:
            names = self.scheduler.set_jobs(
                jobs.triggers(self.config.daemon), self.config.daemon.misfire_grace_s
            )
            log.info("active: this daemon runs the jobs", extra={"jobs": ",".join(names)})
            self._boundary_from_ledger()
            self.notifier.status(f"active; jobs: {', '.join(names) or 'none'}")
        elif was and not now:
            self.scheduler.clear()
            log.warning("standby: leadership lost, jobs paused")
            self.notifier.status("standby")
        elif not now and not self._told_standby:
            self._told_standby = True
            log.info(
                "standby: another daemon holds the lead; polling",
                extra={"poll_s": self.config.daemon.standby_poll_s},
            )
            self.notifier.status("standby")

    def reload(self) -> bool:
        """Reload the config file; keep the running one (and return False) if it is invalid."""
        try:
            new = load_config(self.config_path)
            validate(new)
            if new.ledger.url != self.config.ledger.url:
                raise ConfigError("ledger.url cannot change by reload: restart the service")
        except ConfigError as exc:
            log.error(
                "config reload refused; the running config is kept",
                extra={"config": str(self.config_path), "problems": str(exc)},
            )
            return False
        if new.daemon.metrics_listen != self.config.daemon.metrics_listen:
            log.warning("daemon.metrics_listen changes at the next restart")
        reschedule = new.daemon != self.config.daemon
        self.config = new
        if reschedule and self._leading():
            names = self.scheduler.set_jobs(jobs.triggers(new.daemon), new.daemon.misfire_grace_s)
            log.info("jobs rescheduled", extra={"jobs": ",".join(names)})
        log.info("config reloaded", extra={"config": str(self.config_path)})
        return True

    # hooks for jobs and HTTP ----------------------------------------------------------

    def _job_done(
        self, name: str, result: JobResult | None, seconds: float, engine: Syncer | None
    ) -> None:
        outcome = result.outcome if result is not None else "error"
        self.metrics.job_done(name, outcome, seconds)
        if result is not None and result.changes_run is not None and engine is not None:
            self.metrics.count_actions(engine.ledger.db, result.changes_run)
        if result is not None and result.problems is not None and engine is not None:
            self.metrics.set_source_problems(engine.sources, result.problems)
        if name in RECONCILES and engine is not None:
            self._schedule_boundary(engine)
        at = datetime.now().astimezone().strftime("%H:%M:%S")
        summary = f": {result.summary}" if result is not None and result.summary else ""
        self.notifier.status(f"last {name} {outcome} at {at}{summary}")

    def _schedule_boundary(self, engine: Syncer) -> None:
        """Queue a reconcile just after the next access boundary (a start or end of
        someone's validity), so access opens and closes on time, not at the next poll."""
        if self.stop.is_set() or not self._leading():
            return
        at = engine.next_boundary()
        if at is None:
            return
        run_at = at + timedelta(seconds=self.config.access.boundary_grace_s)
        self.scheduler.run_at("reconcile", run_at, BOUNDARY_TRIGGER)
        log.info("next access boundary", extra={"at": at.isoformat(), "run_at": run_at.isoformat()})

    def _boundary_from_ledger(self) -> None:
        """Queue the next boundary's reconcile from the ledger as it stands (on taking the
        lead: a cron-scheduled reconcile may not run for hours)."""
        try:
            engine = Syncer.from_config(self.config)
        except SyncdError as exc:
            log.error("cannot look up the next access boundary", extra={"error": str(exc)})
            return
        try:
            self._schedule_boundary(engine)
        finally:
            engine.close()

    def health(self) -> tuple[bool, str]:
        """Return (healthy, reason): the scheduler runs and the ledger answers."""
        if not self.scheduler.alive:
            return False, "scheduler not running"
        if self.probe is None:
            return False, "ledger not open"
        try:
            with self.probe.connect() as conn:
                conn.execute(sa.text("SELECT 1")).scalar()
        except sa.exc.SQLAlchemyError as exc:
            return False, f"ledger unreachable: {type(exc).__name__}"
        return True, "ok active" if self._leading() else "ok standby"

    def trigger(self, name: str) -> tuple[int, str]:
        """Queue job `name` now; return (HTTP status, message)."""
        if self.stop.is_set():
            return 503, "stopping"
        if name not in jobs.JOB_NAMES:
            return 404, f"unknown job {name!r}; jobs: {', '.join(jobs.JOB_NAMES)}"
        if name not in self.runner.functions:
            return 404, f"job {name} is not available in this installation"
        if not jobs.runs_in_mode(name, self.config.daemon):
            return 409, f"job {name} writes to terminals: it does not run in plan mode"
        if not self._leading():
            return 409, "this daemon is standby; the active one runs jobs"
        self.scheduler.run_now(name)
        log.info("job queued by trigger", extra={"job": name})
        return 202, f"{name} queued"
