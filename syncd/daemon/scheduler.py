"""The job scheduler: APScheduler 3 (background thread), one job at a time.

Jobs run on a single worker thread, so the daemon's own jobs never compete for the run
lock; each job has `max_instances=1` and `coalesce=True` (runs missed while another ran
collapse into one), and a run later than `misfire_grace_s` is skipped until the next.
Interval jobs run once at start, then every interval; cron jobs at their times.

Each run opens an `Syncer` for the current config (so a reloaded config applies from
the next run on), calls the job with a stop of its own (`engine.stopping.Stop`), and
closes the engine. That stop is set by the daemon's (SIGTERM) and by the job's deadline
(`daemon.job_deadline_s`): the job's requests in flight are cancelled and its run is
recorded as interrupted, so no job holds the single job slot for good. A job that raises
is logged with its job run id (one line; an environmental fault's traceback only at
debug level) and counted; it never stops the daemon.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor  # type: ignore[import-untyped]
from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.date import DateTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]
from tzlocal import get_localzone

from syncd.config import Config
from syncd.daemon.jobs import JobFunction, JobResult, run_job
from syncd.engine import stopping
from syncd.engine.run import Syncer
from syncd.engine.stopping import Stop
from syncd.errors import Interrupted, RunLockBusy, SyncdError, cut, environmental

log = logging.getLogger(__name__)

Done = Callable[[str, JobResult | None, float, Syncer | None], None]


class JobRunner:
    """Runs one job by name: engine per run, stop event, logs, `done` callback."""

    def __init__(
        self,
        functions: dict[str, JobFunction],
        config: Callable[[], Config],
        stop: threading.Event,
        done: Done,
    ) -> None:
        self.functions = functions
        self.config = config
        self.stop = stop
        self.done = done
        self._idle = threading.Condition()
        self._running = 0

    def run(self, name: str, trigger: str = "daemon") -> None:
        """Run job `name` now on this thread; log and swallow any error."""
        if self.stop.is_set():
            return
        with self._idle:
            self._running += 1
        job_run = uuid.uuid4().hex[:8]
        started = time.monotonic()
        fields: dict[str, Any] = {"job": name, "job_run": job_run, "trigger": trigger}
        log.info("job started", extra=fields)
        engine: Syncer | None = None
        result: JobResult | None = None
        try:
            with stopping.linked(self.stop) as stop, self._deadline(stop, fields):
                engine = Syncer.from_config(self.config())
                result = self._call(name, engine, trigger, stop, fields)
        finally:
            seconds = time.monotonic() - started
            self._log_end(result, seconds, fields)
            self._report(name, result, seconds, engine)
            if engine is not None:
                engine.close()
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def _call(
        self, name: str, engine: Syncer, trigger: str, stop: Stop, fields: dict[str, Any]
    ) -> JobResult | None:
        """Run the job under `stop`; return its result (None if it failed: logged)."""
        try:
            with stopping.scope(stop):
                return run_job(self.functions[name], engine, trigger=trigger, stop=stop)
        except RunLockBusy as exc:
            log.warning("job skipped: run lock busy", extra={**fields, "error": str(exc)})
            return JobResult("busy", summary=str(exc))
        except Interrupted as exc:
            return JobResult("interrupted", summary=str(exc))
        except Exception as exc:
            self._log_failure(exc, fields)
            return None

    @contextlib.contextmanager
    def _deadline(self, stop: Stop, fields: dict[str, Any]) -> Iterator[None]:
        """Set `stop` once the job has run `daemon.job_deadline_s`, and log it."""
        deadline_s = self.config().daemon.job_deadline_s
        timer = threading.Timer(deadline_s, stop.set, [f"job_deadline_s of {deadline_s:g} s"])
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            if stop.is_set() and not self.stop.is_set():
                log.error(
                    "job over its deadline: cancelled",
                    extra={**fields, "job_deadline_s": deadline_s},
                )

    def _log_failure(self, exc: Exception, fields: dict[str, Any]) -> None:
        """Log a job's error in one line; a crash (a bug) with its traceback."""
        error = exc if isinstance(exc, SyncdError) else environmental(exc)
        if error is None:
            log.exception("job crashed", extra=fields)
            return
        log.debug("job failed", exc_info=exc, extra=fields)
        log.error("job failed", extra={**fields, "error": cut(f"{type(error).__name__}: {error}")})

    def _log_end(self, result: JobResult | None, seconds: float, fields: dict[str, Any]) -> None:
        if result is None or result.outcome == "busy":
            return
        # A blocked run waits for a person: a warning, so that it stands out in the journal.
        level = logging.WARNING if result.outcome == "blocked" else logging.INFO
        log.log(
            level,
            "job done",
            extra={
                **fields,
                "run": result.run_id,
                "outcome": result.outcome,
                "summary": result.summary,
                "seconds": round(seconds, 3),
            },
        )

    def _report(
        self, name: str, result: JobResult | None, seconds: float, engine: Syncer | None
    ) -> None:
        try:
            self.done(name, result, seconds, engine)
        except Exception:
            log.exception("job report failed", extra={"job": name})

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no job runs; return False if one still runs after `timeout_s`."""
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, timeout=timeout_s)

    @property
    def busy(self) -> bool:
        """Return True while a job runs."""
        return self._running > 0


class Scheduler:
    """APScheduler with the daemon's job defaults; jobs added and removed by name."""

    def __init__(self, runner: JobRunner, misfire_grace_s: float) -> None:
        self.runner = runner
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": max(1, int(misfire_grace_s)),
            },
            timezone=get_localzone(),
        )

    def start(self) -> None:
        """Start the scheduler thread (with no job until `set_jobs`)."""
        self._scheduler.start()

    @property
    def alive(self) -> bool:
        """Return True while the scheduler and its thread run."""
        thread = getattr(self._scheduler, "_thread", None)
        return bool(self._scheduler.running) and thread is not None and thread.is_alive()

    def set_jobs(self, triggers: dict[str, Any], misfire_grace_s: float) -> list[str]:
        """Replace every scheduled job by those of `triggers` with an installed function.

        Return the names scheduled.
        """
        self._scheduler.remove_all_jobs()
        scheduled: list[str] = []
        for name, trigger in triggers.items():
            if name not in self.runner.functions:
                continue
            first = datetime.now(get_localzone()) if isinstance(trigger, IntervalTrigger) else None
            self._scheduler.add_job(
                self.runner.run,
                trigger,
                args=[name],
                id=name,
                name=name,
                misfire_grace_time=max(1, int(misfire_grace_s)),
                **({"next_run_time": first} if first is not None else {}),
            )
            scheduled.append(name)
        return scheduled

    def run_at(self, name: str, at: datetime, trigger: str) -> None:
        """Run job `name` once at `at` (trigger `trigger`), replacing an earlier such
        one-off of the same trigger: the daemon keeps one access-boundary run queued."""
        self._scheduler.add_job(
            self.runner.run,
            DateTrigger(run_date=at),
            args=[name, trigger],
            id=f"{trigger}:{name}",
            name=f"{name} ({trigger})",
            replace_existing=True,
            misfire_grace_time=None,  # late is better than never: access must change
        )

    def clear(self) -> None:
        """Remove every scheduled job (standby)."""
        self._scheduler.remove_all_jobs()

    def run_now(self, name: str) -> None:
        """Queue a one-off run of `name` (trigger "manual") behind any job running."""
        self._scheduler.add_job(
            self.runner.run,
            args=[name, "manual"],
            id=f"manual:{name}:{uuid.uuid4().hex[:6]}",
            name=f"{name} (manual)",
            misfire_grace_time=None,
        )

    def shutdown(self) -> None:
        """Stop taking jobs; the job in flight (if any) goes on until it returns."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
