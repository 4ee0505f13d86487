"""Sample HR exports for the demo, the tests and the benchmarks.

The CSV has the header the shipped `mappings/hr-csv.toml` reads:
`employee_id,first_name,last_name,email,department,status,start_date,end_date,badge_number,pin`.
Generation is deterministic for a given seed; names include non-ASCII letters on purpose.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HEADER = (
    "employee_id",
    "first_name",
    "last_name",
    "email",
    "department",
    "status",
    "start_date",
    "end_date",
    "badge_number",
    "pin",
)
FIRST_NAMES = (
    "Ada",
    "Björn",
    "Chloé",
    "Dmitri",
    "Eva",
    "François",
    "Grace",
    "Hiroshi",
    "Inès",
    "José",
    "Katarzyna",
    "Liam",
    "Maëlle",
    "Nadia",
    "Oskar",
    "Priya",
    "Quentin",
    "Rosa",
    "Søren",
    "Zoë",
)
LAST_NAMES = (
    "Lovelace",
    "Ångström",
    "Dubois",
    "Ivanov",
    "Schmidt",
    "Müller",
    "Hopper",
    "Tanaka",
    "García",
    "Nowak",
    "O'Brien",
    "Rossi",
    "Łukasiewicz",
    "Jensen",
    "Novák",
    "Kowalski",
)
DEPARTMENTS = ("Engineering", "Finance", "Operations", "Security", "Facilities", "Sales")


@dataclass(frozen=True, slots=True)
class DemoChanges:
    """The four changes the demo makes to the HR file, by employee id."""

    hired: str
    terminated: str
    card_changed: str
    renamed: str


def employee_id(index: int) -> str:
    """Return the employee id of the `index`-th sample person."""
    return f"E{index:06d}"


def sample_rows(count: int, seed: int = 42) -> Iterator[dict[str, str]]:
    """Yield `count` HR rows, deterministic for `seed`."""
    rng = random.Random(seed)
    for index in range(1, count + 1):
        first = rng.choice(FIRST_NAMES)
        start = f"20{rng.randint(10, 25)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        last = rng.choice(LAST_NAMES)
        yield {
            "employee_id": employee_id(index),
            "first_name": first,
            "last_name": last,
            "email": f"{employee_id(index).lower()}@example.org",
            "department": rng.choice(DEPARTMENTS),
            "status": "active",
            "start_date": start,
            "end_date": "" if rng.random() < 0.9 else f"2030-{rng.randint(1, 12):02d}-28",
            "badge_number": str(1_000_000 + index * 7),
            "pin": f"{rng.randint(0, 9999):04d}" if rng.random() < 0.5 else "",
        }


def write_people_csv(path: Path, rows: Iterator[dict[str, str]] | list[dict[str, str]]) -> int:
    """Write `rows` as an HR export (UTF-8, comma, header first); return the row count."""
    written = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            written += 1
    return written


def read_people_csv(path: Path) -> list[dict[str, str]]:
    """Return the rows of an HR export written by `write_people_csv`."""
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def apply_demo_changes(path: Path) -> DemoChanges:
    """Change the HR file as the demo does: one hire, one termination, one card, one name."""
    rows = read_people_csv(path)
    hired = employee_id(len(rows) + 1)
    changes = DemoChanges(
        hired=hired,
        terminated=rows[1]["employee_id"],
        card_changed=rows[2]["employee_id"],
        renamed=rows[3]["employee_id"],
    )
    rows[1]["status"] = "terminated"
    rows[2]["badge_number"] = str(int(rows[2]["badge_number"]) + 1)
    rows[3]["last_name"] = "Lindqvist-" + rows[3]["last_name"]
    rows.append(
        {
            "employee_id": hired,
            "first_name": "Noor",
            "last_name": "Haddad",
            "email": f"{hired.lower()}@example.org",
            "department": "Engineering",
            "status": "active",
            "start_date": "2026-11-23",
            "end_date": "",
            "badge_number": "7654321",
            "pin": "",
        }
    )
    write_people_csv(path, rows)
    return changes


def terminate(path: Path, keys: list[str]) -> None:
    """Mark the HR rows of `keys` as terminated (the demo's wave of leavers)."""
    rows = read_people_csv(path)
    for row in rows:
        if row["employee_id"] in keys:
            row["status"] = "terminated"
    write_people_csv(path, rows)
