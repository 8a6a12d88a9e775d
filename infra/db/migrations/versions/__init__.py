"""Revision files (alembic ignores this module; it exists so setuptools packages the directory)."""
