"""A stray ACK is not the ACK of our 200, end to end (RFC 3261 §13.2.2.4, §13.3.1.4).

A SIPp carrier calls a DID, a baresip phone answers, and the carrier answers tongdai's
200 only with an ACK carrying another CSeq number on the INVITE's own branch. tongdai
keeps retransmitting the 200 and, with no real ACK after 64*T1 (32 s), ends the call:
BYE to both sides and a CDR — long before the media timeout would have.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from tests.e2e.conftest import Phones, free_port, make_server, scenario, wait_until

pytestmark = pytest.mark.e2e

DID = "02873019555"


def test_a_call_acked_only_with_a_stray_ack_ends_after_64_t1(
    tmp_path: Path, phones: Phones
) -> None:
    server = make_server(tmp_path, media_timeout="120")
    server.start()
    try:
        app_id = server.cli("app", "create", "stray")["app_id"]
        carrier_port = free_port()
        server.cli("device", "add", "--app", app_id, "alice", "--password", "alice-secret-pw")
        server.cli("trunk", "add", "--app", app_id, "carrier", "--host", "127.0.0.1",
                   "--port", str(carrier_port))
        server.cli("did", "add", "--app", app_id, DID, "--device", "alice")
        alice = phones.start("alice")
        alice.add_account("alice", "alice-secret-pw", server.sip)
        alice.ctl.wait_event("REGISTER_OK", 10)

        started = time.monotonic()
        carrier = subprocess.Popen(
            ["sipp", server.sip, "-sf", scenario("uac_did_stray_ack.xml"), "-s", DID,
             "-i", "127.0.0.1", "-p", str(carrier_port), "-mp", str(free_port()), "-m", "1",
             "-timeout", "60", "-nostdin", "-trace_msg", "-message_file", "msgs.log"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        alice.ctl.wait_event("CALL_ESTABLISHED", 10)
        # The scenario ends once tongdai's BYE has been answered.
        assert carrier.wait(70) == 0, server.log()[-3000:]
        took = time.monotonic() - started
        assert 28 < took < 45, took  # Timer L (64*T1), not the 120 s media timeout
        # SIPp saw the 200 again and again (and answered each repeat with its stray ACK).
        log = (tmp_path / "msgs.log").read_text(errors="replace")
        oks = log.count("SIP/2.0 200 OK")
        assert oks >= 8, oks  # T1, 2T1, 4T1, then every T2 for 32 s
        alice.ctl.wait_event("CALL_CLOSED", 10)  # the phone was hung up too
        rows = wait_until(lambda: server.cli("cdr", "list", "--app", app_id) or None, 15)
        (cdr,) = rows
        assert cdr["did_number"] == DID and cdr["direction"] == "to_ab"
        assert cdr["hangup_by"] == "system"
    finally:
        server.stop()
