"""What was stolen in a theft incident: make and colour per stolen item (migration
``0011_theft_descriptions``; see :mod:`citywatch.surveillance.ebike_thefts`).

A theft is a canonical incident; the canonical record has no place for the stolen goods, so
their description lives here, one row per stolen item (a Toronto event may list several
bicycles).  Only the make and the colour are kept, as the source publishes them: they are what
an officer looks for in the street.  Nothing about the owner is kept.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from citywatch.store.base import Base

__all__ = ["TheftDescriptionRow"]


class TheftDescriptionRow(Base):
    """One stolen item of a theft incident."""

    __tablename__ = "theft_descriptions"

    incident_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    item: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str | None] = mapped_column(String(32))
    make: Mapped[str | None] = mapped_column(String(64))
    colour: Mapped[str | None] = mapped_column(String(32))
