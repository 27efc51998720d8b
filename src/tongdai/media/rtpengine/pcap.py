"""rtpengine's pcap recordings, read back as RTP per receiving port. Pure.

With ``recording-method=pcap`` rtpengine writes every packet it receives on a call's
media ports to one pcap file (libpcap format, the IP header it made up or an
Ethernet header before it, ``recording-format=raw|eth``), stamped with its arrival
time (wall clock). A packet's destination port says which leg it came from: the port
rtpengine gave that leg.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = ["PcapError", "Received", "read_pcap"]

_MAGIC = {0xA1B2C3D4: ("<", 1e-6), 0xA1B23C4D: ("<", 1e-9),
          0xD4C3B2A1: (">", 1e-6), 0x4D3CB2A1: (">", 1e-9)}
# Link types (https://www.tcpdump.org/linktypes.html) → bytes before the IP header.
_LINK_HEADER = {101: 0, 228: 0, 229: 0, 1: 14, 113: 16, 0: 4}
_UDP = 17


class PcapError(ValueError):
    """The file is not a pcap this reader understands."""


@dataclass(slots=True)
class Received:
    """The UDP payloads that arrived on one port, with their arrival times."""

    packets: list[bytes] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)


def read_pcap(data: bytes) -> dict[int, Received]:
    """The UDP payloads in ``data`` by destination port, in file order. A truncated
    last record (the file was cut short) is ignored."""
    if len(data) < 24:
        raise PcapError("shorter than a pcap file header")
    (magic,) = struct.unpack_from("<I", data)
    if magic not in _MAGIC:
        raise PcapError(f"not a pcap file (magic {magic:#x})")
    order, unit = _MAGIC[magic]
    (link,) = struct.unpack_from(order + "I", data, 20)
    skip = _LINK_HEADER.get(link)
    if skip is None:
        raise PcapError(f"link type {link} is not supported")
    record = struct.Struct(order + "IIII")
    out: dict[int, Received] = {}
    at = 24
    while at + record.size <= len(data):
        sec, frac, length, _ = record.unpack_from(data, at)
        at += record.size
        frame = data[at:at + length]
        at += length
        if len(frame) < length:
            break
        udp = _udp(frame[skip:])
        if udp is not None:
            port, payload = udp
            got = out.setdefault(port, Received())
            got.packets.append(payload)
            got.arrivals.append(sec + frac * unit)
    return out


def _udp(ip: bytes) -> tuple[int, bytes] | None:
    """(destination port, payload) of a UDP over IPv4 or IPv6 packet, else None."""
    if len(ip) < 1:
        return None
    version = ip[0] >> 4
    if version == 4 and len(ip) >= 20 and ip[9] == _UDP:
        start = (ip[0] & 0x0F) * 4
    elif version == 6 and len(ip) >= 40 and ip[6] == _UDP:
        start = 40
    else:
        return None
    if len(ip) < start + 8:
        return None
    (port,) = struct.unpack_from("!H", ip, start + 2)
    return port, ip[start + 8:]
