"""Alembic migration scripts, shipped inside the package so `tradebus migrate` works from any directory."""
