"""The app event tables (see ``appstream/store.py``); migration ``0009_app_events``
creates them, and importing this module puts them in ``Base.metadata``."""

from __future__ import annotations

from sqlalchemy import BigInteger, Double, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tongdai.store.models import Base


class AppEventRow(Base):
    """One event of an app, with its number in that app's stream."""

    __tablename__ = "app_events"

    # No foreign key to apps: an event of an app removed meanwhile must not fail the
    # whole batch it was written with.
    app_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(64))
    ts: Mapped[float] = mapped_column(Double)
    devices: Mapped[str] = mapped_column(Text)  # JSON list of sip_users
    data: Mapped[str] = mapped_column(Text)  # JSON object


class AppEventSeqRow(Base):
    """The last number given to an app's events: kept apart from ``app_events`` so
    that trimming old events never lets a number be given twice."""

    __tablename__ = "app_event_seqs"

    app_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
