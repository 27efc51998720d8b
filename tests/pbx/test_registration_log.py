"""Registration changes are logged at info, a refresh at debug, a refused REGISTER too."""

from __future__ import annotations

import logging

import pytest
from tests.pbx.conftest import UdpClient
from tests.pbx.test_registrar import Phone

from tongdai import logs
from tongdai.pbx.credentials import digest_keys
from tongdai.pbx.location import loggable_contact
from tongdai.server import Pbx


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str, dict[str, object]]]:
    return [(r.levelno, r.getMessage(), logs.fields_of(r)) for r in caplog.records
            if r.getMessage().startswith("registration.")]


async def test_registration_changes_are_logged(
    pbx: Pbx, client: UdpClient, caplog: pytest.LogCaptureFixture
) -> None:
    app = await pbx.store.create_app("t")
    await pbx.store.add_device(app.app_id, "alice",
                               digest_keys("alice", pbx.settings.domain, "alice-secret"))
    phone = Phone(client, "alice", "alice-secret")
    caplog.set_level(logging.DEBUG, logger="tongdai")

    assert (await phone.register(expires=600)).status == 200
    assert (await phone.register(expires=600)).status == 200  # a refresh
    assert (await phone.register(expires=5)).status == 423  # below the minimum (60)
    assert (await phone.register(expires=0)).status == 200

    lines = _lines(caplog)
    assert [(level, name) for level, name, _ in lines] == [
        (logging.INFO, "registration.added"), (logging.DEBUG, "registration.refreshed"),
        (logging.INFO, "registration.refused"), (logging.INFO, "registration.removed"),
    ]
    added = lines[0][2]
    assert added | {"expires": 0} == {
        "user": "alice", "app_id": app.app_id, "contact": f"sip:alice@127.0.0.1:{client.port}",
        "transport": "udp", "source": f"127.0.0.1:{client.port}", "expires": 0,
        "user_agent": "",
    }
    assert 590 <= int(str(added["expires"])) <= 600
    refused = lines[2][2]
    assert (refused["status"], refused["user"]) == (423, "alice")
    assert "alice-secret" not in caplog.text


@pytest.mark.parametrize(("contact", "logged"), [
    ("sip:alice@192.0.2.7:5062;transport=tcp;pn-prid=TOKEN", "sip:alice@192.0.2.7:5062"),
    ("sip:alice:hunter2@192.0.2.7", "sip:alice@192.0.2.7"),
    ("sips:192.0.2.7?subject=x", "sips:192.0.2.7"),
])
def test_loggable_contact(contact: str, logged: str) -> None:
    assert loggable_contact(contact) == logged
