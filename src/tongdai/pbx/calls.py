"""The call service: a back-to-back user agent, click-to-call, CDRs and call events.

Every call is two legs with their own dialogs; this module joins them. It is the
transaction user for call requests (the router hands them over) and implements
``CallControl`` for the Open API. Leg mechanics (building requests, relaying SDP)
live in ``legs.py``; the flow of one call lives here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable
from typing import Any

from tongdai.background import stop_task
from tongdai.bus.events import Event
from tongdai.bus.protocol import EventBus
from tongdai.media.engine import MediaEngine, MediaUnavailable
from tongdai.pbx import anchor
from tongdai.pbx.call import Call, Leg, device_party, number_party
from tongdai.pbx.cdr import Outcome, outcome_of_final
from tongdai.pbx.cdrwriter import CdrWriter
from tongdai.pbx.dialplan import (
    DialPlan,
    ToDevice,
    ToTrunk,
    Unroutable,
    binding_peer,
    trunk_peer,
)
from tongdai.pbx.directory import DeviceDirectory
from tongdai.pbx.invite_auth import InviteAuth
from tongdai.pbx.legs import LegFactory
from tongdai.pbx.location import Location
from tongdai.pbx.protocol import DeviceOffline
from tongdai.pbx.throttle import FailureThrottle
from tongdai.settings import Settings
from tongdai.sip.dialog import Dialog
from tongdai.sip.digest import DigestServer
from tongdai.sip.message import Request, Response, make_response
from tongdai.sip.peer import Peer
from tongdai.sip.uri import NameAddr, SipUri
from tongdai.store.protocol import Store

log = logging.getLogger("tongdai.calls")

DialogKey = tuple[str, str, str]


class CallService:
    def __init__(
        self, *, settings: Settings, store: Store, bus: EventBus, shell: Any,
        location: Location, directory: DeviceDirectory, digest: DigestServer,
        media: MediaEngine, cdrs: CdrWriter, throttle: FailureThrottle,
        wall_clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.shell = shell
        self.location = location
        self.directory = directory
        self.digest = digest
        self.media = media
        self.wall = wall_clock
        self.dialplan = DialPlan(directory=directory, location=location)
        self.auth = InviteAuth(digest=digest, directory=directory, throttle=throttle,
                               respond=shell.send_response)
        self.cdrs = cdrs
        self.legs = LegFactory(shell=shell, settings=settings)
        self.calls: dict[str, Call] = {}
        self._server_invites: dict[str, tuple[Call, Leg]] = {}
        self._client_txns: dict[str, tuple[Call, Leg, str, Any]] = {}
        self._dialogs: dict[DialogKey, tuple[Call, Leg]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None

    def set_local_port(self, port: int) -> None:
        self.legs.port = port

    async def start(self) -> None:
        self._watchdog = asyncio.create_task(self._media_watchdog(), name="media-watchdog")

    async def stop(self) -> None:
        for call in list(self.calls.values()):
            self._hangup(call, None, "system")
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        await stop_task(self._watchdog)
        self._watchdog = None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call task failed", exc_info=task.exception())

    # CallControl ---------------------------------------------------------

    def is_registered(self, sip_user: str) -> bool:
        return self.location.is_registered(sip_user)

    async def click_to_call(self, *, app_id: str, sip_user: str, number: str) -> str:
        regs = self.location.bindings(sip_user)
        dev = await self.directory.get(sip_user, self.wall())
        if not regs or dev is None or dev.app_id != app_id:
            raise DeviceOffline(sip_user)
        call = self._new_call(app_id, "click_to_call", "from_ab")
        call.caller = device_party(dev)
        call.callee = number_party(number)
        call.devices = [sip_user]
        target = await self.dialplan.route(app_id, number)
        if isinstance(target, ToDevice):
            call.callee = device_party(target.device)
            call.devices.append(target.device.sip_user)
            call.b_target_dev = target.device
        elif isinstance(target, ToTrunk):
            call.klass = "trunking"
            app = await self.directory.app(app_id, self.wall())
            call.caller_id = (app.default_did or "") if app is not None else ""
        try:
            call.media = await self.media.create_session(
                call_id=call.call_id, app_id=app_id, record=await self._records(app_id)
            )
        except MediaUnavailable:
            log.error("click-to-call %s: no media ports left", call.call_id)
            self._finish(call, Outcome.FAILED, 503, "system")
            return call.call_id
        host, port = call.media.local_address("a")
        leg = Leg(name="a", peer=binding_peer(regs[0]), uas=False)
        call.a = leg
        req = self.legs.invite(
            ruri=regs[0].contact, to_uri=f"sip:{sip_user}@{self.settings.domain}",
            from_user=number, from_display=number, body=anchor.offer(host, port), leg=leg,
        )
        self._send_invite(call, leg, req)
        self._ring_timer(call, leg)
        return call.call_id

    # Events from the router ----------------------------------------------

    def on_request(self, req: Request, peer: Peer, txn: str | None) -> None:
        if req.method == "INVITE" and not req.to_tag and txn is not None:
            self._spawn(self._new_inbound(req, peer, txn))
            return
        key = (req.call_id, req.to_tag, req.from_tag)
        found = self._dialogs.get(key)
        if found is None:
            if txn is not None:
                self.shell.send_response(txn, make_response(req, 481))
            return
        call, leg = found
        if leg.dialog is not None and req.method != "ACK" and not leg.dialog.receive_request(req):
            if txn is not None:
                self.shell.send_response(txn, make_response(req, 500, "Out of Order CSeq"))
            return
        match req.method:
            case "ACK":
                self._on_ack(call, leg, req)
            case "BYE":
                if txn is not None:
                    self.shell.send_response(txn, make_response(req, 200))
                who = "caller" if leg.name == "a" else "callee"
                self._hangup(call, leg, who)
            case "INVITE" | "UPDATE" | "INFO" if txn is not None:
                self._relay_in_dialog(call, leg, req, txn)
            case _:
                if txn is not None:
                    self.shell.send_response(txn, make_response(req, 501))

    def on_cancel(self, req: Request, peer: Peer, invite_txn: str) -> None:
        found = self._server_invites.get(invite_txn)
        if found is None:
            return
        call, leg = found
        if leg.answered or call.finished:
            return
        self.shell.send_response(invite_txn, self.legs.response(leg, 487))
        self._hangup(call, leg, "caller")

    def on_response(self, resp: Response, txn: str) -> None:
        found = self._client_txns.get(txn)
        if found is None:
            return
        call, leg, what, extra = found
        if resp.status >= 200:
            self._client_txns.pop(txn, None)
        match what:
            case "invite":
                self._on_invite_response(call, leg, resp)
            case "relay":
                self._on_relay_response(call, leg, resp, extra)
            case _:
                pass

    def on_stray(self, resp: Response, peer: Peer) -> None:
        """A 2xx retransmitted after its transaction ended: ACK it again (§13.2.2.4)."""
        if resp.status // 100 != 2 or resp.cseq[1] != "INVITE":
            return
        found = self._dialogs.get((resp.call_id, resp.from_tag, resp.to_tag))
        if found is not None and found[1].dialog is not None:
            ack = found[1].dialog.create_ack(resp.cseq[0])
            self.shell.send_stateless(ack, found[1].peer)

    def on_timeout(self, txn: str, req: Request) -> None:
        found = self._client_txns.pop(txn, None)
        if found is not None:
            call, leg, what, extra = found
            if what == "invite" and not leg.answered:
                self._leg_failed(call, leg, 408)
            elif what == "relay":
                src_txn = extra
                self.shell.send_response(src_txn, make_response(req, 408))
            return
        inv = self._server_invites.get(txn)
        if inv is not None and inv[1].answered and not inv[0].finished:
            # RFC 3261 §13.3.1.4: no ACK for our 2xx — the session is not up.
            self._hangup(inv[0], None, "system")

    def on_transport_error(self, txn: str) -> None:
        """The peer of a client transaction cannot be reached (RFC 3261 §17.1.4)."""
        found = self._client_txns.pop(txn, None)
        if found is not None and found[2] == "invite" and not found[1].answered:
            self._leg_failed(found[0], found[1], 503)

    # Inbound INVITEs -----------------------------------------------------

    async def _new_inbound(self, req: Request, peer: Peer, txn: str) -> None:
        trunk = await self.dialplan.trunk_of(peer)
        try:
            dialled = SipUri.parse(req.uri).user or ""
        except Exception:
            self.shell.send_response(txn, make_response(req, 400, "Bad Request-URI"))
            return
        now = self.wall()
        if trunk is not None:
            did_number, target = await self.dialplan.inbound(trunk, dialled)
            call = self._new_call(trunk.app_id, "basic", "to_ab")
            call.klass = "trunking"
            call.did_number = did_number
            call.caller = number_party(_from_user(req))
            if isinstance(target, ToDevice):
                call.callee = device_party(target.device)
                call.devices = [target.device.sip_user]
            else:
                call.callee = number_party(dialled)
        elif not self.location.known_source(peer.transport, peer.host, peer.port):
            # Neither a trunk nor a registered device: scanners and strangers (§26.3.2.2).
            self.shell.send_response(txn, make_response(req, 403, to_tag="x" + os.urandom(4).hex()))
            return
        else:
            dev = await self.auth.check(req, peer, txn, now)
            if dev is None:
                return
            target = await self.dialplan.route(dev.app_id, dialled)
            call = self._new_call(dev.app_id, "basic", "from_ab")
            call.caller = device_party(dev)
            call.devices = [dev.sip_user]
            if isinstance(target, ToDevice):
                call.callee = device_party(target.device)
                call.devices.append(target.device.sip_user)
            else:
                call.callee = number_party(dialled)
                if isinstance(target, ToTrunk):
                    call.klass = "trunking"
                    app = await self.directory.app(dev.app_id, now)
                    call.caller_id = (app.default_did or "") if app is not None else ""
        leg_a = Leg(name="a", peer=peer, uas=True, invite=req, txn=txn,
                    local_tag=self.shell.endpoint.new_tag())
        call.a = leg_a
        self._server_invites[txn] = (call, leg_a)
        if isinstance(target, Unroutable):
            self.shell.send_response(txn, self.legs.response(leg_a, target.status, target.reason))
            outcome = Outcome.NO_ANSWER if target.status == 480 else Outcome.FAILED
            # An offline device never rang: the seed counts that as not picked up (IVR)
            # only for inbound calls; an outgoing call to an offline device is ERROR.
            if call.direction == "from_ab" and target.status == 480:
                outcome = Outcome.FAILED
            self._finish(call, outcome, target.status, "system")
            return
        try:
            call.media = await self.media.create_session(
                call_id=call.call_id, app_id=call.app_id, record=await self._records(call.app_id)
            )
        except MediaUnavailable:
            log.error("call %s: no media ports left; answering 503", call.call_id)
            self.shell.send_response(txn, self.legs.response(leg_a, 503))
            self._finish(call, Outcome.FAILED, 503, "system")
            return
        body = b""
        remote = anchor.remote_of(req.body)
        if remote is not None:
            call.media.set_remote("a", *remote)
            body = anchor.rewrite(req.body, *call.media.local_address("b"))
        self._dial_b(call, target, body, from_req=req)

    def _dial_b(self, call: Call, target: ToDevice | ToTrunk, body: bytes,
                from_req: Request | None) -> None:
        """Start leg b towards ``target`` with SDP ``body`` (empty for a late offer)."""
        a = call.a
        assert a is not None
        caller_user = str(call.caller.get("number", "anonymous"))
        display = ""
        if isinstance(target, ToDevice):
            # Every binding of the device rings at once (RFC 3261 §16.7-style forking
            # done by the B2BUA): the first to answer wins, the others are cancelled.
            to_uri = f"sip:{target.device.sip_user}@{self.settings.domain}"
            if from_req is not None:
                display = _display(from_req)
            forks = []
            for binding in target.bindings or (target.binding,):
                leg = Leg(name="b", peer=binding_peer(binding), uas=False)
                req = self.legs.invite(
                    ruri=binding.contact, to_uri=to_uri, from_user=caller_user,
                    from_display=display, body=body, leg=leg,
                )
                leg.ack_pending = not body
                forks.append((leg, req))
            call.forks = [leg for leg, _ in forks]
            call.b = call.forks[0]
            for leg, req in forks:
                self._send_invite(call, leg, req)
            self._ring_timer(call, call.b)
            return
        leg = Leg(name="b", peer=trunk_peer(target.trunk), uas=False)
        ruri = f"sip:{target.number}@{target.trunk.host}:{target.trunk.port}"
        call.b = leg
        req = self.legs.invite(
            ruri=ruri, to_uri=ruri, from_user=self._caller_id(call), from_display=display,
            body=body, leg=leg, trunk=target.trunk,
        )
        leg.ack_pending = not body
        self._send_invite(call, leg, req)
        self._ring_timer(call, leg)

    def _caller_id(self, call: Call) -> str:
        return call.caller_id or str(call.caller.get("number", "anonymous"))

    # Shared mechanics ----------------------------------------------------

    def _new_call(self, app_id: str, kind: str, direction: str) -> Call:
        call = Call(call_id=secrets.token_hex(10), app_id=app_id, kind=kind,
                    direction=direction, started_at=self.wall())
        self.calls[call.call_id] = call
        return call

    async def _records(self, app_id: str) -> bool:
        app = await self.directory.app(app_id, self.wall())
        return bool(app.record_calls) if app is not None else self.settings.record_calls_default

    def _send_invite(self, call: Call, leg: Leg, req: Request) -> None:
        leg.invite = req
        leg.txn = self.shell.send_request(req, leg.peer)
        self._client_txns[leg.txn] = (call, leg, "invite", None)

    def _ring_timer(self, call: Call, leg: Leg) -> None:
        loop = asyncio.get_running_loop()
        call.timers.append(loop.call_later(self.settings.ring_timeout, self._ring_out, call, leg))

    def _ring_out(self, call: Call, leg: Leg) -> None:
        ringing = [f for f in call.forks if not f.ended] if leg.name == "b" and call.forks \
            else [leg]
        if call.finished or any(f.answered for f in ([leg, *call.forks])) or not ringing:
            return
        log.info("call %s: ring timeout on leg %s", call.call_id, leg.name)
        for f in ringing:
            self._cancel_leg(f)
        a = call.a
        if a is not None and a.uas and not a.answered and a.txn is not None:
            self.shell.send_response(a.txn, self.legs.response(a, 480, "No Answer"))
        if call.kind == "click_to_call" and a is not None and a.answered:
            self._bye(a)
        self._finish(call, Outcome.NO_ANSWER, 480, "system")

    def _cancel_leg(self, leg: Leg) -> None:
        if leg.uas or leg.answered or leg.ended or leg.txn is None:
            return
        leg.cancelled = True
        leg.ended = True
        self.shell.cancel(leg.txn)

    def _bye(self, leg: Leg) -> None:
        if leg.ended or leg.dialog is None:
            leg.ended = True
            return
        leg.ended = True
        bye = leg.dialog.create_request("BYE")
        self.shell.send_request(bye, leg.peer)

    def _answer_media(self, call: Call, leg: Leg, body: bytes) -> None:
        if call.media is None:
            return
        remote = anchor.remote_of(body)
        if remote is not None:
            call.media.set_remote(leg.name, *remote)

    def _track_dialog(self, call: Call, leg: Leg, dialog: Dialog) -> None:
        leg.dialog = dialog
        self._dialogs[dialog.id] = (call, leg)

    # Leg b / click-to-call responses --------------------------------------

    def _on_invite_response(self, call: Call, leg: Leg, resp: Response) -> None:
        code = resp.status
        if code < 200:
            if code in (180, 183):
                first = not leg.rang
                leg.rang = True
                if call.kind == "basic" and leg.name == "b":
                    self._relay_provisional(call, resp)
                if first and "ringing" not in call.events_sent:
                    self._publish(call, "call.ringing")
            return
        if 200 <= code < 300:
            self._on_leg_answered(call, leg, resp)
            return
        if code in (401, 407) and leg.name == "b" and self._retry_with_credentials(call, leg, resp):
            return
        if leg.cancelled or leg.ended:
            return
        self._leg_failed(call, leg, code)

    def _on_leg_answered(self, call: Call, leg: Leg, resp: Response) -> None:
        assert leg.invite is not None
        dialog = Dialog.from_uac(leg.invite, resp)
        self._track_dialog(call, leg, dialog)
        lost = leg.name == "b" and any(f.answered for f in call.forks if f is not leg)
        if call.finished or leg.ended or lost:
            # CANCEL lost the race with a 2xx, or another fork answered first: confirm,
            # then tear down (RFC 3261 §15).
            self.shell.send_stateless(dialog.create_ack(leg.invite.cseq[0]), leg.peer)
            leg.ended = False
            self._bye(leg)
            return
        leg.answered = True
        if leg.name == "b" and call.forks:
            call.b = leg
            for other in call.forks:
                if other is not leg:
                    self._cancel_leg(other)
        leg.remote_sdp = resp.body
        self._answer_media(call, leg, resp.body)
        if not leg.ack_pending:
            self.shell.send_stateless(dialog.create_ack(leg.invite.cseq[0]), leg.peer)
        if call.kind == "click_to_call" and leg.name == "a":
            self._spawn(self._c2c_dial_number(call))
            return
        self._connected(call, leg, resp)

    def _connected(self, call: Call, leg_b: Leg, resp: Response) -> None:
        """The far end answered: answer leg a (basic calls), start billing and recording."""
        a = call.a
        assert a is not None and call.media is not None
        if call.kind == "basic" and a.txn is not None:
            body = b""
            if resp.body:
                body = anchor.rewrite(resp.body, *call.media.local_address("a"))
            ok = self.legs.response(a, 200, body=body)
            assert a.invite is not None
            self._track_dialog(call, a, Dialog.from_uas(a.invite, ok,
                                                        local_contact=self.legs.contact(a.peer)))
            a.answered = True
            self.shell.send_response(a.txn, ok)
        call.answered_at = self.wall()
        call.media.start_recording()
        loop = asyncio.get_running_loop()
        call.timers.append(loop.call_later(self.settings.max_call_duration, self._hangup,
                                           call, None, "system"))
        self._publish(call, "call.answered")

    def _leg_failed(self, call: Call, leg: Leg, code: int) -> None:
        leg.ended = True
        leg.final = code
        if leg.name == "b" and len(call.forks) > 1:
            if any(not f.ended for f in call.forks):
                return  # other forks still ring
            # All forks failed: report the most telling answer (RFC 3261 §16.7 step 6:
            # a busy or decline outranks "not reachable there").
            finals = [f.final for f in call.forks if f.final]
            code = next((c for c in finals if c in (486, 600, 603)), finals[0] if finals else code)
            leg.rang = any(f.rang for f in call.forks)
        outcome = outcome_of_final(code, rang=leg.rang)
        a = call.a
        if call.kind == "basic" and a is not None and a.txn is not None and not a.answered:
            mapped = code if code not in (401, 407) else 503
            self.shell.send_response(a.txn, self.legs.response(a, mapped))
        if call.kind == "click_to_call" and leg.name == "b" and a is not None:
            self._bye(a)
        # In click-to-call leg a is the agent: the calling side.
        self._finish(call, outcome, code, "caller" if leg.name == "a" else "callee")

    def _relay_provisional(self, call: Call, resp: Response) -> None:
        a = call.a
        if a is None or a.txn is None or a.answered or call.media is None:
            return
        body = b""
        if resp.body and resp.status == 183:
            body = anchor.rewrite(resp.body, *call.media.local_address("a"))
            if call.b is not None:
                self._answer_media(call, call.b, resp.body)
        self.shell.send_response(a.txn, self.legs.response(a, resp.status, body=body))

    def _retry_with_credentials(self, call: Call, leg: Leg, resp: Response) -> bool:
        trunk = leg.trunk
        if trunk is None or not trunk.username or leg.auth_tries >= 1 or leg.invite is None:
            return False
        req = self.legs.authorized(leg.invite, resp, trunk)
        if req is None:
            return False
        leg.auth_tries += 1
        self._send_invite(call, leg, req)
        return True

    async def _c2c_dial_number(self, call: Call) -> None:
        """The agent answered: now call the number and bridge (RFC 3725 flow)."""
        a = call.a
        assert a is not None and call.media is not None
        dialled = str(call.callee.get("number"))
        if call.b_target_dev is not None:
            target = self.dialplan.to_device(call.b_target_dev)
        else:
            target = await self.dialplan.route(call.app_id, dialled)
        if call.finished:
            return
        if isinstance(target, Unroutable):
            self._bye(a)
            self._finish(call, Outcome.FAILED, target.status, "system")
            return
        codec = anchor.chosen_codec(a.remote_sdp)
        codecs = (codec,) if codec else ("0", "8")
        body = anchor.offer(*call.media.local_address("b"), codecs=codecs)
        self._dial_b(call, target, body, from_req=None)

    # In-dialog -------------------------------------------------------------

    def _on_ack(self, call: Call, leg: Leg, req: Request) -> None:
        b = call.b
        if leg.name == "a" and b is not None and b.ack_pending and b.dialog and b.invite:
            b.ack_pending = False
            body = b""
            if req.body and call.media is not None:
                self._answer_media(call, leg, req.body)
                body = anchor.rewrite(req.body, *call.media.local_address("b"))
            ack = b.dialog.create_ack(b.invite.cseq[0], body=body,
                                      content_type="application/sdp" if body else None)
            self.shell.send_stateless(ack, b.peer)

    def _relay_in_dialog(self, call: Call, leg: Leg, req: Request, txn: str) -> None:
        """re-INVITE / UPDATE / INFO: pass through to the other leg (hold, resume, DTMF)."""
        other = call.other(leg)
        if other is None or other.dialog is None or other.ended or call.media is None:
            self.shell.send_response(txn, make_response(req, 491 if req.method == "INVITE"
                                                        else 481))
            return
        body = req.body
        ctype = req.headers.get("content-type")
        if req.method in ("INVITE", "UPDATE") and body:
            call.on_hold = anchor.on_hold(body)
            self._answer_media(call, leg, body)
            body = anchor.rewrite(body, *call.media.local_address(other.name))
        fwd = other.dialog.create_request(req.method, body=body, content_type=ctype)
        out = self.shell.send_request(fwd, other.peer)
        self._client_txns[out] = (call, other, "relay", (txn, req, leg))

    def _on_relay_response(self, call: Call, other: Leg, resp: Response, extra: Any) -> None:
        src_txn, src_req, src_leg = extra
        if resp.status < 200:
            return
        body = resp.body
        if resp.status < 300 and src_req.method == "INVITE" and other.dialog is not None:
            other.dialog.update_from_response(resp)
            ack = other.dialog.create_ack(resp.cseq[0])
            self.shell.send_stateless(ack, other.peer)
        if body and call.media is not None and src_req.method in ("INVITE", "UPDATE"):
            self._answer_media(call, other, body)
            body = anchor.rewrite(body, *call.media.local_address(src_leg.name))
        out = make_response(src_req, resp.status, resp.reason, body=body,
                            content_type="application/sdp" if body else None)
        if resp.status < 300:
            out.headers.add("contact", self.legs.contact(src_leg.peer))
        self.shell.send_response(src_txn, out)

    # Ending ----------------------------------------------------------------

    def _hangup(self, call: Call, from_leg: Leg | None, who: str) -> None:
        if call.finished:
            return
        if from_leg is not None:
            from_leg.ended = True
        for leg in call.legs():
            if leg is from_leg or leg.ended:
                continue
            if leg.answered:
                self._bye(leg)
            elif not leg.uas:
                self._cancel_leg(leg)
            elif leg.txn is not None:
                leg.ended = True
                self.shell.send_response(leg.txn, self.legs.response(leg, 487))
        if call.answered_at is not None:
            self._finish(call, Outcome.ANSWERED, 200, who)
        elif who == "caller":
            self._finish(call, Outcome.CALLER_GAVE_UP, 487, who)
        else:
            self._finish(call, Outcome.FAILED, 500, who)

    def _finish(self, call: Call, outcome: Outcome, code: int, who: str) -> None:
        if call.finished:
            return
        call.finished = True
        call.outcome = outcome
        call.sip_code = code
        call.hangup_by = who
        call.ended_at = self.wall()
        call.cancel_timers()
        self._spawn(self._finalize(call))

    async def _finalize(self, call: Call) -> None:
        recording = ""
        if call.media is not None:
            try:
                recording = await call.media.close()
            except Exception:
                log.exception("call %s: closing media failed", call.call_id)
        cdr = call.to_cdr(recording)  # an unanswered call keeps no recording
        # Durable before anything reports the call ended.
        for attempt in range(5):
            try:
                await self.cdrs.write(cdr)
                break
            except Exception:
                log.exception("call %s: storing the CDR failed (try %d)", call.call_id, attempt)
                await asyncio.sleep(0.2 * (attempt + 1))
        data = {**cdr.to_api(), "call_id": call.call_id, "sip_code": call.sip_code,
                "hangup_by": call.hangup_by, "started_at": call.started_at,
                "answered_at": call.answered_at, "ended_at": call.ended_at}
        await self._emit(call, "call.ended", data)
        # Keep dialogs a little longer so late BYE/ACK retransmissions are matched.
        asyncio.get_running_loop().call_later(32.0, self._forget, call)

    def _forget(self, call: Call) -> None:
        self.calls.pop(call.call_id, None)
        for leg in call.legs():
            if leg.dialog is not None:
                self._dialogs.pop(leg.dialog.id, None)
            if leg.txn is not None:
                self._server_invites.pop(leg.txn, None)
                self._client_txns.pop(leg.txn, None)

    def _publish(self, call: Call, kind: str) -> None:
        call.events_sent.add(kind.removeprefix("call."))
        data = call.event_data()
        self._spawn(self._emit(call, kind, data))

    async def _emit(self, call: Call, kind: str, data: dict[str, Any]) -> None:
        await self.bus.publish(Event(type=kind, app_id=call.app_id,
                                     sip_users=tuple(call.devices), ts=self.wall(), data=data))

    async def _media_watchdog(self) -> None:
        """End answered calls whose media stopped (a callee that vanished without BYE)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(5.0, self.settings.media_timeout / 2))
            now = loop.time()
            for call in list(self.calls.values()):
                if call.finished or call.answered_at is None or call.media is None:
                    continue
                if call.on_hold:
                    continue  # a held call legitimately carries no RTP (RFC 3264 §8.4)
                silent = now - min(call.media.leg_activity("a"), call.media.leg_activity("b"))
                if silent > self.settings.media_timeout:
                    log.info("call %s: no media from one side for %ss; hanging up",
                             call.call_id, self.settings.media_timeout)
                    self._hangup(call, None, "system")


def _from_user(req: Request) -> str:
    try:
        return NameAddr.parse(req.headers.get("from") or "").uri.user or "anonymous"
    except Exception:
        return "anonymous"


def _display(req: Request) -> str:
    try:
        return NameAddr.parse(req.headers.get("from") or "").display
    except Exception:
        return ""
