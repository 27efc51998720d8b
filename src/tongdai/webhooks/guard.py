"""Where webhooks may go: public addresses only, unless allowed (SSRF).

A webhook URL is chosen by whoever holds an app's admin rights; without this guard it
could make tongdai POST to its own loopback services, the cloud's metadata address
(169.254.169.254) or the private network behind it. The host is resolved at every
attempt and every address it resolves to must be public; the request then goes to the
checked address itself (Host header and TLS SNI keep the name), so a DNS answer that
changes between the check and the connection (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL = 2048
# Resolutions are kept this long: a webhook's host is looked up once per burst, not
# once per delivery. The connection goes to the address that was checked either way.
DNS_TTL = 30.0


class Refused(ValueError):
    """The URL is not an allowed webhook target; the message says why in a sentence."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect for one webhook URL: the URL rewritten to a checked address,
    and the name to send as Host and as TLS server name."""

    url: str
    host_header: str
    server_name: str


def check_url(url: str) -> None:
    """Refuse what is not an http(s) URL with a host (no resolution: see ``resolve``)."""
    if len(url) > MAX_URL:
        raise Refused(f"the webhook URL is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Refused("the webhook URL is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise Refused("the webhook URL must start with https:// (or http://)")
    if not parts.hostname:
        raise Refused("the webhook URL has no host")
    if port == 0:
        raise Refused("the webhook URL's port must be 1 to 65535")
    if any(c.isspace() for c in url):
        raise Refused("the webhook URL must not contain spaces")


def refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` is no place for a webhook, or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        # 100.64.0.0/10 (carrier NAT), documentation, benchmarking and reserved ranges.
        return "not public"
    return None


class Guard:
    """Resolves webhook hosts and refuses non-public addresses unless allowed."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._cache: dict[tuple[str, int], tuple[float, str]] = {}
        self._targets: dict[str, tuple[float, Target]] = {}

    async def target(self, url: str) -> Target:
        """The checked address to POST ``url`` to; raises ``Refused``."""
        hit = self._targets.get(url)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        target = await self._target(url)
        if len(self._targets) > 1000:
            self._targets.clear()
        self._targets[url] = (time.monotonic() + DNS_TTL, target)
        return target

    async def _target(self, url: str) -> Target:
        check_url(url)
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = await self._address(host, port)
        netloc = f"[{address}]" if ":" in address else address
        if parts.port is not None:
            netloc += f":{parts.port}"
        userinfo, at, hostport = parts.netloc.rpartition("@")
        if at:
            netloc = f"{userinfo}@{netloc}"  # basic auth in the URL still applies
        rewritten = parts._replace(netloc=netloc).geturl()
        return Target(url=rewritten, host_header=hostport, server_name=host)

    async def _address(self, host: str, port: int) -> str:
        now = time.monotonic()
        hit = self._cache.get((host, port))
        if hit is not None and hit[0] > now:
            return hit[1]
        addresses = await resolve(host, port)
        for ip in addresses:
            why = refusal(ip)
            if why is not None and not self.allow_private:
                what = (f"address {ip} is {why}" if str(ip) == host.strip("[]") else
                        f"host {host} resolves to a {why} address ({ip})")
                raise Refused(
                    f"the webhook {what}; webhooks go to public addresses only unless "
                    "TONGDAI_WEBHOOK_ALLOW_PRIVATE=true")
        address = str(addresses[0])
        if len(self._cache) > 1000:
            self._cache.clear()
        self._cache[(host, port)] = (now + DNS_TTL, address)
        return address


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal is its own answer)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"the webhook host {host} does not resolve ({exc})") from None
    out: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        # An IPv6 sockaddr may carry a zone ("fe80::1%eth0"): the zone is not part of
        # the address, and such an address is link-local anyway.
        ip = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if ip not in out:
            out.append(ip)
    if not out:
        raise Refused(f"the webhook host {host} has no address")
    return out
