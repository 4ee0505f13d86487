"""Alembic environment for the syncd ledger.

syncd runs migrations programmatically (`syncd db upgrade`): the caller passes an open
connection in `config.attributes["connection"]`. Running `alembic` by hand works too, with
`-x url=sqlite:///ledger.db`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from syncd.ledger.schema import metadata

config = context.config


def run_migrations() -> None:
    """Run the migrations on the caller's connection, or on one opened from `-x url=`."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    engine = create_engine(str(url))
    with engine.begin() as conn:
        _run(conn)


def _run(connection: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
