"""What administration shows of each object: the JSON the CLI prints with ``--json``
and the admin API answers with. Secrets appear only where they are issued."""

from __future__ import annotations

from typing import Any

from tongdai.admin.store import AdminKeyRec, AuditRec, OperatorRec
from tongdai.store.records import AppRec, Cdr, DeviceRec, DidRec, Registration, TrunkRec
from tongdai.webhooks.store import DeliveryRec, EndpointRec


def app(a: AppRec, *, secret: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {"app_id": a.app_id, "name": a.name}
    if secret:
        d["app_secret"] = a.app_secret.reveal()
    d |= {"created_at": a.created_at, "record_calls": a.record_calls,
          "default_did": a.default_did}
    return d


def device(d: DeviceRec) -> dict[str, Any]:
    return {"sip_user": d.sip_user, "app_id": d.app_id, "display_name": d.display_name,
            "extension": d.extension, "realm": d.realm}


def did(d: DidRec) -> dict[str, Any]:
    return {"number": d.number, "app_id": d.app_id, "sip_user": d.sip_user}


def trunk(t: TrunkRec) -> dict[str, Any]:
    return {"name": t.name, "app_id": t.app_id, "host": t.host, "port": t.port,
            "transport": t.transport, "username": t.username,
            "has_password": t.password is not None, "prefix": t.prefix, "strip": t.strip,
            "match": list(t.routes), "priority": t.priority}


def registration(r: Registration, now: float) -> dict[str, Any]:
    return {"sip_user": r.sip_user, "contact": r.contact,
            "source": f"{r.source_host}:{r.source_port}", "transport": r.transport,
            "expires_in": max(0, int(r.expires_at - now)), "user_agent": r.user_agent}


def cdr(c: Cdr) -> dict[str, Any]:
    return {**c.to_api(), "call_id": c.call_id, "sip_code": c.sip_code,
            "hangup_by": c.hangup_by}


def webhook(e: EndpointRec) -> dict[str, Any]:
    return {"webhook_id": e.endpoint_id, "app_id": e.app_id, "url": e.url,
            "events": ",".join(e.events), "enabled": e.enabled, "failures": e.failures,
            "disabled_reason": e.disabled_reason, "created_at": e.created_at}


def delivery(d: DeliveryRec) -> dict[str, Any]:
    return {"delivery_id": d.delivery_id, "webhook_id": d.endpoint_id,
            "event": d.event_type, "event_id": d.event_id, "status": d.status,
            "attempts": d.attempts, "last_error": d.last_error, "created_at": d.created_at,
            "delivered_at": d.delivered_at}


def admin_key(k: AdminKeyRec) -> dict[str, Any]:
    return {"key_id": k.key_id, "app_id": k.app_id, "label": k.label,
            "created_at": k.created_at, "revoked": k.revoked_at is not None,
            "revoked_at": k.revoked_at}


def operator(o: OperatorRec) -> dict[str, Any]:
    return {"name": o.name, "app_id": o.app_id, "created_at": o.created_at}


def audit(a: AuditRec) -> dict[str, Any]:
    return {"seq": a.seq, "at": a.at, "actor": a.actor, "app_id": a.app_id,
            "action": a.action, "target": a.target, "detail": a.detail}
