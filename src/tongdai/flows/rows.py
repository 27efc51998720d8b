"""The call-centre tables (see ``flows/store.py``): flows on DIDs and on extensions,
queues, and paused agents. Migrations ``0011_call_flows`` and ``0015_extension_flows``
create them; importing this module (``store/sql.py``
does, through ``FlowTables``) puts them in ``Base.metadata``."""

from __future__ import annotations

from sqlalchemy import Double, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tongdai.store.models import Base


class FlowRow(Base):
    """The call flow a DID runs: the document as written, and its version."""

    __tablename__ = "call_flows"

    did_number: Mapped[str] = mapped_column(
        String(20), ForeignKey("dids.number", ondelete="CASCADE"), primary_key=True)
    app_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("apps.app_id", ondelete="CASCADE"), index=True)
    document: Mapped[str] = mapped_column(Text)  # YAML or JSON, as given
    version: Mapped[int] = mapped_column(Integer)  # 1, then +1 on every change
    updated_at: Mapped[float] = mapped_column(Double)


class ExtensionFlowRow(Base):
    """The call flow an internal extension runs: a number the app's devices dial."""

    __tablename__ = "extension_flows"

    app_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("apps.app_id", ondelete="CASCADE"), primary_key=True)
    extension: Mapped[str] = mapped_column(String(16), primary_key=True)
    document: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[float] = mapped_column(Double)


class QueueRow(Base):
    """An app's queue of agents (ACD)."""

    __tablename__ = "call_queues"

    app_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("apps.app_id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    agents: Mapped[str] = mapped_column(Text)  # comma-separated sip_users, in order
    strategy: Mapped[str] = mapped_column(String(16))
    max_wait: Mapped[int] = mapped_column(Integer)  # seconds; 0: no limit
    max_length: Mapped[int] = mapped_column(Integer)  # callers waiting; 0: no limit
    ring_timeout: Mapped[int] = mapped_column(Integer)  # per agent, seconds
    wrapup: Mapped[int] = mapped_column(Integer)  # seconds after a call, not rung
    created_at: Mapped[float] = mapped_column(Double)


class PausedAgentRow(Base):
    """An agent who takes no queue calls for now (``tongdai agent pause``)."""

    __tablename__ = "paused_agents"

    sip_user: Mapped[str] = mapped_column(
        String(64), ForeignKey("devices.sip_user", ondelete="CASCADE"), primary_key=True)
    paused_at: Mapped[float] = mapped_column(Double)
