"""The webhook tables (see ``webhooks/store.py``). They extend the store's schema:
migration ``0007_webhooks`` creates them, and importing this module (``store/sql.py``
does, through ``WebhookTables``) puts them in ``Base.metadata``."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Double, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tongdai.store.models import Base


class WebhookEndpointRow(Base):
    """An app's webhook: where its events are POSTed (``tongdai/webhooks``)."""

    __tablename__ = "webhook_endpoints"

    endpoint_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    app_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("apps.app_id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    # Comma-separated bindings: "call.*,device.registered"; "*" is every event.
    events: Mapped[str] = mapped_column(String(512))
    # Signs every delivery; sealed like app secrets (store/sealing.py).
    secret: Mapped[str] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Failed attempts since the last success; at TONGDAI_WEBHOOK_DISABLE_AFTER the
    # endpoint is disabled. While ``paused_until`` is ahead, nothing is sent to it.
    failures: Mapped[int] = mapped_column(Integer, default=0)
    paused_until: Mapped[float] = mapped_column(Double, default=0.0)
    disabled_reason: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[float] = mapped_column(Double)
    # When it was last enabled (0 before 0016): a failed attempt begun earlier neither
    # rests nor disables it again.
    enabled_at: Mapped[float] = mapped_column(Double, default=0.0, server_default="0")


class WebhookDeliveryRow(Base):
    """The outbox: one event for one endpoint, from its publication to its delivery."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The sender's scan: WHERE node = ? AND status = 'pending' ORDER BY seq.
        Index("ix_webhook_deliveries_node_status_seq", "node", "status", "seq"),
        # webhook deliveries: an endpoint's newest first.
        Index("ix_webhook_deliveries_endpoint_seq", "endpoint_id", "seq"),
    )

    # Publication order; a call's events go out in this order.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(40), unique=True)
    endpoint_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("webhook_endpoints.endpoint_id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(64))
    # Deliveries with the same key (the call, or the device) go out one at a time.
    order_key: Mapped[str] = mapped_column(String(255))
    # The process that published the event sends it (pbx/recovery.py: node_id).
    node: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[float] = mapped_column(Double)
    delivered_at: Mapped[float | None] = mapped_column(Double, nullable=True)
