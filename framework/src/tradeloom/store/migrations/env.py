"""alembic environment: tradeloom passes the connection in (``tradeloom db upgrade``)."""

from alembic import context

from tradeloom.store.models import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `tradeloom db upgrade`, not the alembic CLI")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
