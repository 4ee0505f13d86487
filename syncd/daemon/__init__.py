"""`syncd run`: the scheduler daemon (jobs, signals, sd_notify, /metrics, active/standby).

Modules: `service` (the process's life), `scheduler` (APScheduler 3, one job at a
time), `jobs` (the job table), `leader` (active/standby lock), `notify` (sd_notify),
`metrics` and `http` (the localhost listener), `logs` (journald-friendly lines).
"""
