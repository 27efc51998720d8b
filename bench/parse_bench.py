"""Microbenchmark: messages/s for ``parse_message`` on typical traffic.

Run with ``python bench/parse_bench.py``; it takes a few seconds. The registrar
target is more than 100,000 REGISTER parses/s on one core.
"""

from __future__ import annotations

import timeit

from tongdai.sip.parser import StreamFramer, parse_message

REGISTER = (
    b"REGISTER sip:pbx.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---a1b2c3d4e5f6;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'Contact: <sip:alice@192.0.2.10:5060;rinstance=8f3a2c1d;transport=UDP>'
    b';+sip.instance="<urn:uuid:00000000-0000-1000-8000-00a0c91e6bf6>"\r\n'
    b"To: <sip:alice@pbx.example.com>\r\n"
    b"From: <sip:alice@pbx.example.com>;tag=4f6b2a91\r\n"
    b"Call-ID: 9a7c3e1f5b2d4086a1c3e5f7b9d1f3a5\r\n"
    b"CSeq: 2 REGISTER\r\n"
    b"Expires: 3600\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n"
    b"User-Agent: Linphone Desktop/5.2.1 (Debian GNU/Linux 12) LinphoneCore/5.3.0\r\n"
    b'Authorization: Digest username="alice", realm="pbx.example.com", '
    b'nonce="ZlI3a2dUTm9uY2UxNzE2MjM5MDIyOmFiY2RlZg", uri="sip:pbx.example.com", '
    b'response="6629fae49393a05397450978507c4ef1", algorithm=MD5, cnonce="0a4f113b", '
    b"qop=auth, nc=00000001\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

_SDP = (
    b"v=0\r\n"
    b"o=- 3912345678 3912345678 IN IP4 192.0.2.20\r\n"
    b"s=pjmedia\r\n"
    b"c=IN IP4 192.0.2.20\r\n"
    b"t=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)
INVITE = (
    b"INVITE sip:1001@pbx.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.20:5060;rport;branch=z9hG4bKPj3f1c2b7a9e\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: \"Bob\" <sip:1002@pbx.example.com>;tag=Y3n8Hh2kQ\r\n"
    b"To: <sip:1001@pbx.example.com>\r\n"
    b"Contact: <sip:1002@192.0.2.20:5060;ob>\r\n"
    b"Call-ID: 4e9d0a1f-6c55-4c1e-9b5a-7d2e3f4a5b6c\r\n"
    b"CSeq: 21170 INVITE\r\n"
    b"Allow: PRACK, INVITE, ACK, BYE, CANCEL, UPDATE, INFO, SUBSCRIBE, NOTIFY, REFER\r\n"
    b"Supported: replaces, 100rel, timer, norefersub\r\n"
    b"Session-Expires: 1800\r\n"
    b"Min-SE: 90\r\n"
    b"User-Agent: PJSUA v2.14 Linux-6.1/x86_64/glibc-2.36\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(_SDP)).encode() + b"\r\n"
    b"\r\n" + _SDP
)


def rate(label: str, stmt: object, seconds: float = 1.0) -> None:
    timer = timeit.Timer(stmt)  # type: ignore[arg-type]
    n, elapsed = timer.autorange()
    loops = max(1, int(n * seconds / elapsed))
    best = min(timer.repeat(repeat=3, number=loops)) / loops
    print(f"{label:<34} {1 / best:>12,.0f} msg/s  ({best * 1e6:.2f} us each)")


def main() -> None:
    parse_message(REGISTER)
    parse_message(INVITE)
    rate("parse_message REGISTER+Authorization", lambda: parse_message(REGISTER))
    rate("parse_message INVITE+SDP", lambda: parse_message(INVITE))
    stream = (REGISTER + INVITE) * 50

    def frame() -> None:
        StreamFramer().feed(stream)

    timer = timeit.Timer(frame)
    n, elapsed = timer.autorange()
    print(f"{'StreamFramer (one 100-message chunk)':<34} {100 * n / elapsed:>12,.0f} msg/s")


if __name__ == "__main__":
    main()
