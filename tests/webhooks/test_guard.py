"""SSRF: webhook targets on loopback, link-local and private networks are refused."""

from __future__ import annotations

import ipaddress

import pytest

from tongdai.webhooks.guard import Guard, Refused, check_url, refusal


@pytest.mark.parametrize("ip", [
    "127.0.0.1", "127.8.9.10", "::1", "169.254.169.254", "fe80::1", "10.1.2.3",
    "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1", "0.0.0.0", "::",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "fc00::1", "fd12:3456::1", "224.0.0.1",
    "192.0.2.1", "198.18.0.1",
])
def test_non_public_addresses_are_refused(ip: str) -> None:
    assert refusal(ipaddress.ip_address(ip)) is not None


@pytest.mark.parametrize("ip", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111",
                                "172.32.0.1", "100.128.0.1"])
def test_public_addresses_pass(ip: str) -> None:
    assert refusal(ipaddress.ip_address(ip)) is None


@pytest.mark.parametrize("url,why", [
    ("http://127.0.0.1:8080/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://10.0.0.5/hook", "private"),
    ("http://localhost:9/hook", "loopback"),  # a name: resolved, every address checked
    ("http://[::ffff:7f00:1]/hook", "loopback"),
])
async def test_the_guard_refuses_private_targets(url: str, why: str) -> None:
    with pytest.raises(Refused, match=f"{why}.*TONGDAI_WEBHOOK_ALLOW_PRIVATE"):
        await Guard(allow_private=False).target(url)


async def test_the_setting_allows_private_targets_and_the_ip_is_what_gets_dialled() -> None:
    t = await Guard(allow_private=True).target("http://user:pw@localhost:8080/a/b?x=1")
    assert t.url in ("http://user:pw@127.0.0.1:8080/a/b?x=1", "http://user:pw@[::1]:8080/a/b?x=1")
    assert t.host_header == "localhost:8080" and t.server_name == "localhost"
    t = await Guard(allow_private=False).target("https://93.184.216.34/hook")
    assert t.url == "https://93.184.216.34/hook" and t.server_name == "93.184.216.34"


@pytest.mark.parametrize("url,msg", [
    ("ftp://example.com/x", "https://"),
    ("file:///etc/passwd", "https://"),
    ("https:///nohost", "no host"),
    ("http://example.com:99999/", "not a valid URL"),
    ("https://example.com/" + "a" * 3000, "longer than"),
    ("http://exa mple.com/", "spaces"),
])
def test_malformed_urls_are_refused_with_a_reason(url: str, msg: str) -> None:
    with pytest.raises(Refused, match=msg):
        check_url(url)


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(Refused, match="does not resolve"):
        await Guard(allow_private=False).target("https://no-such-host.invalid/hook")
