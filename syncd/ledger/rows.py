"""Two ways of reading many rows cheaply: restricted to a list of keys in chunks each
database plans cheaply (`by_keys`), and straight from the DBAPI cursor (`raw_rows`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def by_keys(
    conn: Connection, query: sa.Select[Any], column: sa.ColumnElement[Any], keys: Iterable[str]
) -> Iterator[Sequence[Any]]:
    """Yield the rows of `query` whose `column` is one of `keys`, a chunk of keys at a time.

    PostgreSQL takes the keys as one array (`= ANY`): a long IN list costs it far more to
    plan than to run (100 000 records: 0.6 s against 4.7 s in lists of 500). Elsewhere an
    IN list, kept under SQLite's oldest limit of 999 parameters.
    """
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return
    match: sa.ColumnElement[bool]
    if conn.dialect.name == "postgresql":
        # Imported here: on a SQLite ledger the PostgreSQL dialect is never loaded (25 ms).
        from sqlalchemy.dialects.postgresql import ARRAY

        match, chunk = column == sa.any_(sa.bindparam("keys", type_=ARRAY(sa.String))), 10_000
    else:
        match, chunk = column.in_(sa.bindparam("keys", expanding=True)), 500
    restricted = query.where(match)
    for start in range(0, len(wanted), chunk):
        yield conn.execute(restricted, {"keys": wanted[start : start + chunk]}).all()


_BATCH = 20_000
"""Rows fetched from the cursor at a time (memory stays flat while the dicts grow)."""


def raw_rows(conn: Connection, query: sa.Select[Any]) -> Iterator[Sequence[Any]]:
    """Yield batches of `query`'s rows as DBAPI tuples; only for columns needing no
    result processing (text), since SQLAlchemy's type handling is bypassed.

    PostgreSQL gets a server-side cursor, so that the client never holds the whole
    result at once (psycopg would otherwise receive all of it on execute).
    """
    compiled = query.compile(dialect=conn.dialect)
    params = compiled.construct_params()
    args: Any = params
    if compiled.positional:
        args = tuple(params[name] for name in compiled.positiontup or ())
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None  # an open Connection always has one
    if conn.dialect.name == "postgresql":
        cursor = dbapi.cursor(name="syncd_raw_rows")
    else:
        cursor = dbapi.cursor()
    try:
        cursor.execute(compiled.string, args)
        while rows := cursor.fetchmany(_BATCH):
            yield rows
    finally:
        cursor.close()
