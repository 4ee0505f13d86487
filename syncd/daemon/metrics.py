"""Prometheus metrics of the daemon, in a registry of its own.

Counted as jobs finish (this process only; they restart at zero, as counters may):

    syncd_runs_total{kind, outcome}                 jobs run, by job name and outcome
    syncd_actions_total{target, op, outcome}        actions of the daemon's applies
    syncd_job_failures_total{kind}                  jobs that raised
    syncd_job_duration_seconds{kind}                histogram of job durations

Set after each reconcile (deep or not) of this process:

    syncd_source_problems{source, decision}         defective source records of the last
                                                    reconcile: held / disabled / skipped
                                                    (0 for each configured source when none)

Read from the ledger at each scrape (so they agree with `syncd status`, whoever ran):

    syncd_blocked_actions{target}                   target records held by a safety cap
    syncd_failed_records{target}                    target records waiting for a retry
    syncd_target_quarantined{target}                1 while quarantined (target_health)
    syncd_target_last_success_timestamp_seconds{target}
    syncd_leader                                    1 on the active daemon, 0 on standby
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from syncd.ledger.health import load_health
from syncd.ledger.runproblems import count_by_decision
from syncd.ledger.schema import changes, target_records
from syncd.sources.base import Decision, SourceProblem

log = logging.getLogger(__name__)

DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class LedgerCollector(Collector):
    """Gauges read from the ledger at each scrape; a ledger that fails yields none."""

    def __init__(self, engine: Callable[[], sa.Engine | None], leader: Callable[[], bool]) -> None:
        self._engine = engine
        self._leader = leader

    def collect(self) -> Iterator[Metric]:
        """Yield the leader gauge, then the ledger's gauges (skipped if it does not answer)."""
        leader = GaugeMetricFamily("syncd_leader", "1 on the active daemon, 0 on standby")
        leader.add_metric([], 1.0 if self._leader() else 0.0)
        yield leader
        engine = self._engine()
        if engine is None:
            return
        try:
            yield from _ledger_gauges(engine)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("metrics: ledger unreadable: %s", type(exc).__name__)


def _ledger_gauges(engine: sa.Engine) -> Iterator[Metric]:
    blocked = GaugeMetricFamily(
        "syncd_blocked_actions", "Target records held by a safety cap", labels=["target"]
    )
    failed = GaugeMetricFamily(
        "syncd_failed_records", "Target records waiting for a retry", labels=["target"]
    )
    query = (
        sa.select(target_records.c.target, target_records.c.state, sa.func.count())
        .where(target_records.c.state.in_(("blocked", "failed")))
        .group_by(target_records.c.target, target_records.c.state)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    for target, state, count in rows:
        (blocked if state == "blocked" else failed).add_metric([target], float(count))
    quarantined = GaugeMetricFamily(
        "syncd_target_quarantined", "1 while the target is quarantined", labels=["target"]
    )
    success = GaugeMetricFamily(
        "syncd_target_last_success_timestamp_seconds",
        "When the target last had a run without failure (Unix time)",
        labels=["target"],
    )
    for name, health in sorted(load_health(engine).items()):
        quarantined.add_metric([name], 1.0 if health.quarantined else 0.0)
        if health.last_success_at is not None:
            success.add_metric([name], health.last_success_at.timestamp())
    yield from (blocked, failed, quarantined, success)


class DaemonMetrics:
    """The daemon's registry and the counters its jobs update."""

    def __init__(
        self,
        engine: Callable[[], sa.Engine | None] = lambda: None,
        leader: Callable[[], bool] = lambda: False,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.runs = Counter(
            "syncd_runs",
            "Jobs run, by kind and outcome",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.actions = Counter(
            "syncd_actions",
            "Actions applied by the daemon",
            ["target", "op", "outcome"],
            registry=self.registry,
        )
        self.failures = Counter(
            "syncd_job_failures", "Jobs that raised", ["kind"], registry=self.registry
        )
        self.duration = Histogram(
            "syncd_job_duration_seconds",
            "Job duration",
            ["kind"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.source_problems = Gauge(
            "syncd_source_problems",
            "Defective source records of the last reconcile, by source and decision",
            ["source", "decision"],
            registry=self.registry,
        )
        self.registry.register(LedgerCollector(engine, leader))

    def job_done(self, kind: str, outcome: str, seconds: float) -> None:
        """Count one finished job (outcome "error" when it raised)."""
        self.runs.labels(kind, outcome).inc()
        self.duration.labels(kind).observe(seconds)
        if outcome == "error":
            self.failures.labels(kind).inc()

    def set_source_problems(
        self, sources: Iterable[str], problems: Sequence[SourceProblem]
    ) -> None:
        """Set `syncd_source_problems` to the problems of one reconcile: a series per
        configured source and decision (0 when none), none left for a removed source."""
        counts = count_by_decision(problems)
        self.source_problems.clear()
        for source in {*sources, *(s for s, _ in counts)}:
            for decision in Decision:
                value = counts.get((source, str(decision)), 0)
                self.source_problems.labels(source, str(decision)).set(value)

    def count_actions(self, engine: sa.Engine, run_id: int) -> None:
        """Add the actions the ledger recorded for run `run_id` to `syncd_actions_total`."""
        query = (
            sa.select(changes.c.target, changes.c.op, changes.c.outcome, sa.func.count())
            .where(changes.c.run_id == run_id)
            .group_by(changes.c.target, changes.c.op, changes.c.outcome)
        )
        with engine.connect() as conn:
            for target, op, outcome, count in conn.execute(query):
                self.actions.labels(target, op, outcome).inc(count)
