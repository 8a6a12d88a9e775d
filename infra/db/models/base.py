"""Declarative base shared by every tradebus table."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Deterministic constraint names, so hand-written migrations can refer to (and later drop or
# alter) a constraint by the same name the model produces.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base class of all ORM models; its metadata is the migrations' target."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Protective exit reasons (protocol ExitReason); NULL: the row is not a protective exit.
EXIT_REASONS = ("STOP_LOSS", "TAKE_PROFIT", "TRAILING_STOP", "TIME_STOP")
EXIT_REASON_CHECK = "exit_reason IS NULL OR exit_reason IN (" + ", ".join(repr(r) for r in EXIT_REASONS) + ")"
