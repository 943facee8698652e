"""Alembic's environment and the schema's versions, shipped in the package (see migrate.py)."""
