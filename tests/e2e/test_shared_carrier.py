"""Two tenants buying from one carrier: each call reaches the app that owns its DID.

Apps A and B both have a trunk to the same carrier host:port (SIPp), each its own DID
and softphone (baresip). A call to A's DID rings A's phone and its CDR is in A's
histories only, and the same for B; a call to a DID of neither is answered 404 and
leaves no CDR anywhere.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.baresip_ctl import Baresip
from tests.e2e.conftest import (
    Phones,
    Server,
    free_port,
    make_server,
    scenario,
    wait_process,
    wait_until,
)

pytestmark = pytest.mark.e2e


def _sha(*parts: str) -> str:
    return hashlib.sha256("".join(parts).encode()).hexdigest()


class Tenant:
    def __init__(self, server: Server, name: str, user: str, did: str, carrier_port: int):
        app = server.cli("app", "create", name)
        self.app_id: str = app["app_id"]
        self.secret: str = app["app_secret"]
        self.user = user
        self.did = did
        self.server = server
        server.cli("device", "add", "--app", self.app_id, user, "--password", f"{user}-secret-pw")
        server.cli("trunk", "add", "--app", self.app_id, "vn-carrier", "--host", "127.0.0.1",
                   "--port", str(carrier_port))
        server.cli("did", "add", "--app", self.app_id, did, "--device", user)

    def histories(self) -> list[dict[str, Any]]:
        """The app's calls through the Open API, as its integrator sees them."""
        start, end = str(int(time.time()) - 3600), str(int(time.time()) + 60)
        q = {"appId": self.app_id, "created_from": start, "created_to": end,
             "limit": "100", "page": "1"}
        q["hash"] = _sha(self.app_id, start, end, "100", "1", self.secret)
        r = httpx.get(f"{self.server.http}/oapi/v1/call/histories", params=q, timeout=10)
        assert r.status_code == 200, r.text
        data: list[dict[str, Any]] = r.json()["data"]
        return data

    def phone(self, phones: Phones) -> Baresip:
        p = phones.start(f"{self.user}-{time.monotonic_ns()}")
        p.add_account(self.user, f"{self.user}-secret-pw", self.server.sip)
        p.ctl.wait_event("REGISTER_OK", 10)
        return p


class Shared:
    def __init__(self, server: Server, tmp: Path) -> None:
        self.server = server
        self.tmp = tmp
        self.carrier_port = free_port()
        self.a = Tenant(server, "tenant-a", "alice", "02873019555", self.carrier_port)
        self.b = Tenant(server, "tenant-b", "bob", "02873019666", self.carrier_port)

    def call(self, did: str, scen: str, expect: str = "",
             audio: Path | None = None) -> subprocess.Popen[bytes]:
        """SIPp as the carrier, from the trunks' host:port, calling ``did``."""
        src = Path(scenario(scen)).read_text().replace("@EXPECT@", expect)
        src = src.replace("@AUDIO@", str(audio))
        path = self.tmp / f"{scen}-{time.monotonic_ns()}.xml"
        path.write_text(src)
        return subprocess.Popen(
            ["sipp", self.server.sip, "-sf", str(path), "-s", did, "-i", "127.0.0.1",
             "-p", str(self.carrier_port), "-mp", str(free_port()), "-m", "1", "-d", "1000",
             "-timeout", "30", "-nostdin"],
            cwd=self.tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    tmp = tmp_path_factory.mktemp("shared-carrier")
    server = make_server(tmp)
    server.start()
    try:
        yield Shared(server, tmp)
    finally:
        server.stop()


def test_each_did_reaches_its_own_tenant(
    shared: Shared, phones: Phones, audio: dict[str, Path]
) -> None:
    alice, bob = shared.a.phone(phones), shared.b.phone(phones)
    for callee, other, tenant, rival in ((alice, bob, shared.a, shared.b),
                                         (bob, alice, shared.b, shared.a)):
        carrier = shared.call(tenant.did, "uac_did.xml", audio=audio["tone1000_pcmu"])
        try:
            callee.ctl.wait_event("CALL_ESTABLISHED", 10)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{shared.server.log()[-4000:]}") from None
        assert wait_process(carrier) == 0
        rows = wait_until(lambda t=tenant: [h for h in t.histories() if h["did_number"] ==
                                            t.did] or None, timeout=15)
        assert len(rows) == 1
        cdr = rows[0]
        assert cdr["direction"] == "to_ab" and cdr["class"] == "trunking"
        assert cdr["status_detail"] == "SUCCESS"
        assert cdr["callee"]["username"] == tenant.user
        assert not [h for h in rival.histories() if h["did_number"] == tenant.did]
        # the other tenant's phone never rang
        with pytest.raises(TimeoutError):
            other.ctl.wait_event("CALL_INCOMING", 0.5)


def test_a_did_of_neither_tenant_is_404_and_leaves_no_cdr(shared: Shared) -> None:
    before = (len(shared.a.histories()), len(shared.b.histories()))
    # uac_forbidden expects the given final response, then ACKs it.
    assert wait_process(shared.call("02873019000", "uac_forbidden.xml", expect="404")) == 0
    time.sleep(1.5)  # a CDR would be written within milliseconds
    assert (len(shared.a.histories()), len(shared.b.histories())) == before
