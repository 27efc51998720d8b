"""pjsua2 (PJSIP) as an agent doing an attended transfer (REFER with Replaces).

Usage: python pj_attended.py REGISTRAR_HOST:PORT USER PASSWORD LOCAL_PORT RTP_PORT
       CONSULT_URI SECONDS

Registers, answers the first incoming call (the customer), holds it, calls
CONSULT_URI (a colleague), and once the colleague answers refers the customer to
the colleague with Replaces naming the consultation (``Call.xferReplaces``). Prints
one line per step: REG_STATE, CUSTOMER <state>, CONSULT <state>, XFER <code>, DONE.
Run as a subprocess: PJSIP owns its threads and must not share the test process.
"""

from __future__ import annotations

import os
import sys
import time

import pjsua2 as pj


class Call(pj.Call):  # type: ignore[misc]
    def __init__(self, agent: Agent, name: str, acc: pj.Account,
                 call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(acc, call_id)
        self.agent = agent
        self.name = name
        self.state = ""

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        self.state = info.stateText
        print(self.name, info.stateText, info.lastStatusCode, flush=True)

    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:
        print("XFER", prm.statusCode, flush=True)
        if prm.finalNotify:
            self.agent.xfer_final = prm.statusCode


class Agent(pj.Account):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.customer: Call | None = None
        self.consult: Call | None = None
        self.xfer_final = 0

    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        print("REG_STATE", prm.code, prm.reason, flush=True)

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        self.customer = Call(self, "CUSTOMER", self, prm.callId)
        op = pj.CallOpParam()
        op.statusCode = 200
        self.customer.answer(op)


def main() -> None:
    registrar, user, password, local_port, rtp_port, consult_uri, seconds = sys.argv[1:8]
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.logConfig.level = 1
    cfg.uaConfig.stunServer = pj.StringVector()
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()
    tc = pj.TransportConfig()
    tc.port = int(local_port)
    tc.boundAddress = "127.0.0.1"
    tc.publicAddress = "127.0.0.1"
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
    ep.libStart()
    ac = pj.AccountConfig()
    ac.idUri = f"sip:{user}@{registrar}"
    ac.regConfig.registrarUri = f"sip:{registrar}"
    ac.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, password))
    ac.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    ac.mediaConfig.transportConfig.port = int(rtp_port)
    agent = Agent()
    agent.create(ac)
    end = time.time() + float(seconds)
    step = "wait_customer"
    at = 0.0
    while time.time() < end and not agent.xfer_final:
        ep.libHandleEvents(20)
        customer, consult = agent.customer, agent.consult
        if step == "wait_customer" and customer is not None and customer.state == "CONFIRMED":
            step, at = "hold", time.time() + 1
        elif step == "hold" and time.time() >= at and customer is not None:
            customer.setHold(pj.CallOpParam(True))
            step, at = "consult", time.time() + 1
        elif step == "consult" and time.time() >= at:
            agent.consult = Call(agent, "CONSULT", agent)
            agent.consult.makeCall(consult_uri, pj.CallOpParam(True))
            step = "wait_consult"
        elif step == "wait_consult" and consult is not None and consult.state == "CONFIRMED":
            step, at = "refer", time.time() + 1
        elif step == "refer" and time.time() >= at and customer is not None \
                and consult is not None:
            customer.xferReplaces(consult, pj.CallOpParam(True))
            step = "referred"
    print("DONE", step, agent.xfer_final, flush=True)
    end = time.time() + 3
    while time.time() < end:
        ep.libHandleEvents(50)
    ep.hangupAllCalls()
    agent.setRegistration(False)
    end = time.time() + 1
    while time.time() < end:
        ep.libHandleEvents(50)
    # PJSIP aborts in libDestroy while Python still holds its Call objects, and the
    # calls are over: leave without tearing the library down.
    sys.stdout.flush()
    os._exit(0)

if __name__ == "__main__":
    main()
