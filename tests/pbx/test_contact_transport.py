"""Our Contact names the transport the device reached us over (RFC 3261 §19.1.1,
RFC 7118 §5.2): in-dialog requests come back the same way."""

from __future__ import annotations

import pytest

from tongdai.pbx.b2bua.messages import Messages
from tongdai.sip.peer import Peer


@pytest.mark.parametrize(("transport", "param"), [
    ("udp", ""), ("tcp", ";transport=tcp"), ("ws", ";transport=ws"), ("wss", ";transport=wss"),
])
def test_contact_names_the_transport(transport: str, param: str) -> None:
    msg = Messages(domain="pbx.example", host="192.0.2.1", port=5060)
    assert msg.contact(Peer(transport, "198.51.100.7", 40000)) == (
        f"<sip:tongdai@192.0.2.1:5060{param}>")
