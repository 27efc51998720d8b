"""pjsua2 (PJSIP) registers one account and prints its registration states.

Usage: python pj_register.py REGISTRAR_HOST:PORT USER PASSWORD udp|tcp LOCAL_PORT SECONDS
Run as a subprocess: PJSIP owns its threads and must not share the test process.
"""

from __future__ import annotations

import gc
import sys
import time

import pjsua2 as pj


class Acc(pj.Account):  # type: ignore[misc]
    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        print("REG_STATE", prm.code, prm.reason, flush=True)


def main() -> None:
    registrar, user, password, transport, local_port, seconds = sys.argv[1:7]
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
    kind = pj.PJSIP_TRANSPORT_TCP if transport == "tcp" else pj.PJSIP_TRANSPORT_UDP
    ep.transportCreate(kind, tc)
    ep.libStart()
    ac = pj.AccountConfig()
    suffix = ";transport=tcp" if transport == "tcp" else ""
    ac.idUri = f"sip:{user}@{registrar}"
    ac.regConfig.registrarUri = f"sip:{registrar}{suffix}"
    ac.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, password))
    acc = Acc()
    acc.create(ac)
    end = time.time() + float(seconds)
    while time.time() < end:
        ep.libHandleEvents(50)
    acc.setRegistration(False)
    end = time.time() + 2
    while time.time() < end:
        ep.libHandleEvents(50)
    acc.shutdown()
    del acc
    gc.collect()
    ep.libDestroy()


if __name__ == "__main__":
    main()
