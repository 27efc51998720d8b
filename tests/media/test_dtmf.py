"""DTMF: SIP INFO bodies, the RFC 4733 detector, and SIPp pressing keys at a LegMedia."""

from __future__ import annotations

import asyncio
import socket
import struct
import subprocess
from pathlib import Path

import pytest
from tests.media.legmedia import leg_media_peer

from tongdai.media.dtmf import EventDetector, parse_info

SCENARIOS = Path(__file__).parent / "scenarios"


@pytest.mark.parametrize(("content_type", "body", "digit"), [
    ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", "5"),
    ("application/dtmf-relay", b"Signal=#\r\nDuration=250", "#"),
    ("application/dtmf-relay", b"Duration=100\nSignal= * \n", "*"),
    ("Application/DTMF-Relay; charset=us-ascii", b"signal=a\r\nduration=160", "A"),
    ("application/dtmf-relay", b"Signal=11\r\nDuration=160", "#"),  # event number form
    ("application/dtmf", b"7", "7"),
    ("application/dtmf", b"0\r\n", "0"),
    ("application/dtmf", b"d", "D"),
])
def test_info_bodies_give_their_digit(content_type: str, body: bytes, digit: str) -> None:
    assert parse_info(content_type, body) == digit


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/dtmf-relay", b""),
    ("application/dtmf-relay", b"Duration=160"),
    ("application/dtmf-relay", b"Signal=\r\nDuration=160"),
    ("application/dtmf-relay", b"Signal=55"),
    ("application/dtmf-relay", b"Signal=16"),
    ("application/dtmf-relay", b"Signal=E"),
    ("application/dtmf-relay", b"Signal=1\r\nSignal=2"),
    ("application/dtmf-relay", b"garbage\r\nSignal=1"),
    ("application/dtmf-relay", b"Signal=\xff"),
    ("application/dtmf-relay", b"Signal=1" + b" " * 300),
    ("application/dtmf", b""),
    ("application/dtmf", b"12"),
    ("application/dtmf", b"x"),
    ("application/sdp", b"5"),
    ("text/plain", b"Signal=5"),
    ("", b"5"),
])
def test_garbage_gives_none(content_type: str, body: bytes) -> None:
    assert parse_info(content_type, body) is None


def test_an_event_counts_once_by_its_timestamp() -> None:
    det = EventDetector()

    def payload(event: int, end: bool, duration: int) -> bytes:
        return struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)

    got = []
    # 5 pressed: start, updates, end three times (RFC 4733 §2.5.1.4)
    for d, end in ((160, False), (320, False), (480, True), (480, True), (480, True)):
        got.append(det.feed(1, 1000, payload(5, end, d)))
    assert got == ["5", None, None, None, None]
    # The same key again is a new event: a new timestamp.
    assert det.feed(1, 3000, payload(5, True, 480)) == "5"  # only its end arrived
    assert det.feed(1, 3000, payload(5, True, 480)) is None
    # Another sender (SSRC) with the same timestamp is another event.
    assert det.feed(2, 3000, payload(11, False, 160)) == "#"
    assert det.feed(1, 5000, payload(16, False, 160)) is None  # not DTMF
    assert det.feed(1, 6000, b"\x01\x00") is None  # too short


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sipp(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sipp", *args, "-nostdin"], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


@pytest.mark.e2e
async def test_sipp_presses_keys_as_rfc4733(tmp_path: Path) -> None:
    """SIPp calls and presses every key (``play_dtmf``, RFC 4733); the answer's SDP
    points its media at a LegMedia, which hears each key exactly once."""
    digits = "1234567890*#"
    async with leg_media_peer(tmp_path) as peer:
        peer.media.set_dtmf_pt(96)  # what SIPp 3.6.1 sends (see uac_dtmf.xml)
        port = peer.address[1]
        uas = tmp_path / "uas.xml"
        uas.write_text((SCENARIOS / "uas_media_at.xml").read_text().replace(
            "MEDIA_PORT", str(port)))
        uac = tmp_path / "uac.xml"
        uac.write_text((SCENARIOS / "uac_dtmf.xml").read_text().replace("DIGITS", digits))
        uas_port, uac_port, uac_media = _free_udp_port(), _free_udp_port(), _free_udp_port()
        server = _sipp(["-sf", str(uas), "-i", "127.0.0.1", "-p", str(uas_port), "-m", "1",
                        "-mp", str(_free_udp_port())], tmp_path)
        client = _sipp(["-sf", str(uac), "-i", "127.0.0.1", "-p", str(uac_port), "-m", "1",
                        "-mp", str(uac_media), "-d", "6000", "-s", "ivr",
                        f"127.0.0.1:{uas_port}"], tmp_path)
        try:
            got = await peer.media.collect(max_digits=len(digits), timeout=8)
            assert got == digits
            # Nothing more arrives: the three end packets of each key counted once.
            assert await peer.media.collect(timeout=1.0) == ""
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, client.wait, 30) == 0
            assert await loop.run_in_executor(None, server.wait, 30) == 0
        finally:
            for p in (client, server):
                if p.poll() is None:
                    p.kill()
                    p.wait()
