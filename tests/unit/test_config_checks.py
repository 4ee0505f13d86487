"""syncd.toml is checked when it is loaded: every problem at once, each with its dotted
path, including zones, crontab lines, versions and credential names, and a source or
target keeps its name in the path even when that name is also a kind (`clue`, `csv`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import SecretRef, load_config
from syncd.config.secretref import SecretRef as SecretRefItself
from syncd.errors import ConfigError

CSV = """
[sources.{source}]
type = "csv"
path = "people.csv"
mapping = "builtin:hr-csv"
"""


def _problems(tmp_path: Path, text: str) -> list[str]:
    """Load `text` as syncd.toml; return its problem lines (without the header)."""
    path = tmp_path / "syncd.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    header, *lines = str(caught.value).splitlines()
    assert header == f"{path}: {len(lines)} problem(s):"
    return [line.strip() for line in lines]


def test_every_bad_value_is_reported_at_once_with_its_path(tmp_path: Path) -> None:
    text = (
        CSV.format(source="hr")
        + """
[access]
time_zone = "Europe/Berlinn"

[daemon]
reconcile_cron = "61 * * * *"
deep_reconcile_cron = "* * * *"

[targets.door]
type = "ef45"
url = "http://127.0.0.1:1"
time_zone = "Mars/Olympus"
batch_min_version = "1.3.x"

[targets.place]
type = "clue"
place_id = 7
api_key = {credential = "../x"}
time_zone = "Nowhere"
"""
    )
    problems = _problems(tmp_path, text)
    wrong = sorted(line.split(":")[0] for line in problems)
    assert wrong == [
        "access.time_zone",
        "daemon.deep_reconcile_cron",
        "daemon.reconcile_cron",
        "targets.door.batch_min_version",
        "targets.door.time_zone",
        "targets.place.api_key.credential",
        "targets.place.time_zone",
    ], problems
    assert any("unknown time zone 'Mars/Olympus'" in line for line in problems)
    assert any("higher than the maximum value (59)" in line for line in problems)


@pytest.mark.parametrize("kind", ["clue", "ef45"])
def test_a_target_named_like_a_kind_keeps_its_name(tmp_path: Path, kind: str) -> None:
    text = (
        CSV.format(source="csv")
        + f"""
[targets.{kind}]
type = "clue"
place_id = 7
apikey = {{env = "X"}}
"""
    )
    problems = _problems(tmp_path, text)
    assert problems == [
        f"targets.{kind}.api_key: Field required",
        f"targets.{kind}.apikey: unknown key (did you mean `api_key`?)",
    ]


def test_a_source_named_like_its_kind_keeps_its_name(tmp_path: Path) -> None:
    text = """
[sources.ldap]
type = "ldap"
url = "ldap://127.0.0.1"
mapping = "builtin:openldap"

[targets.door]
type = "ef45"
url = "http://127.0.0.1:1"
"""
    assert _problems(tmp_path, text) == ["sources.ldap.base_dn: Field required"]


def test_a_good_config_loads(tmp_path: Path) -> None:
    text = (
        CSV.format(source="hr")
        + """
[daemon]
reconcile_cron = "*/5 6-20 * * mon-fri"

[targets.door]
type = "ef45"
url = "http://127.0.0.1:1"
time_zone = "Europe/Berlin"
batch_min_version = "1.3"
"""
    )
    (tmp_path / "syncd.toml").write_text(text, encoding="utf-8")
    config = load_config(tmp_path / "syncd.toml")
    assert config.daemon.reconcile_cron == "*/5 6-20 * * mon-fri"
    assert config.targets["door"].time_zone == "Europe/Berlin"


def test_secret_ref_is_still_importable_from_config() -> None:
    assert SecretRef is SecretRefItself


def test_problems_read_in_toml_words_without_pydantic_prefixes(tmp_path: Path) -> None:
    text = CSV.format(source="hr") + (
        '\n[access]\ntime_zone = "Nowhere"\n[ledger]\nurl = 3\n'
        '[targets.door]\ntype = "ef45"\nurl = "http://127.0.0.1:1"\n'
    )
    problems = _problems(tmp_path, text)
    assert sorted(problems) == [
        "access.time_zone: unknown time zone 'Nowhere' (an IANA name: Europe/Berlin)",
        "ledger.url: must be a string, not an integer",
    ]


@pytest.mark.parametrize("status", [404, 409, 500])
def test_a_record_answer_cannot_mean_a_lost_lock(tmp_path: Path, status: int) -> None:
    text = (
        CSV.format(source="hr")
        + f"""
[targets.door]
type = "ef45"
url = "http://10.0.0.21:9980"
lost_lock_statuses = [403, {status}]
"""
    )
    (problem,) = _problems(tmp_path, text)
    assert problem.startswith(f"targets.door.lost_lock_statuses: {status} cannot mean a lost lock")
