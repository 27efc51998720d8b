"""Apps, devices, DIDs and trunks on both backends (the ``store`` fixture)."""

import hashlib
import re
from typing import Any

import pytest

from tongdai.pbx.credentials import digest_keys
from tongdai.sip.digest import ha1
from tongdai.store import Conflict, Invalid, NotFound
from tongdai.store.sql import SqlStore

REALM = "pbx.test"


def _md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


async def test_apps_round_trip(store: SqlStore) -> None:
    a = await store.create_app("  Acme CRM ")
    assert re.fullmatch(r"[a-z0-9]{20}", a.app_id)
    assert re.fullmatch(r"[0-9a-f]{64}", a.app_secret.reveal())
    assert a.name == "Acme CRM" and a.record_calls and a.default_did is None
    b = await store.create_app("Beta")
    assert a.app_id != b.app_id and a.app_secret.reveal() != b.app_secret.reveal()
    assert await store.get_app(a.app_id) == a
    assert await store.get_app("nope") is None
    assert [x.app_id for x in await store.list_apps()] == [a.app_id, b.app_id]

    rotated = await store.rotate_secret(a.app_id)
    assert rotated.app_secret.reveal() != a.app_secret.reveal()
    assert rotated.app_id == a.app_id
    assert (await store.get_app(a.app_id)) == rotated

    off = await store.update_app(a.app_id, record_calls=False)
    assert off.record_calls is False
    assert (await store.update_app(a.app_id)).record_calls is False  # None: unchanged

    await store.delete_app(a.app_id)
    assert await store.get_app(a.app_id) is None
    assert [x.app_id for x in await store.list_apps()] == [b.app_id]


async def test_app_name_is_checked(store: SqlStore) -> None:
    for name in ("", "   ", "x" * 101, "bad\nname"):
        with pytest.raises(Invalid):
            await store.create_app(name)
    assert await store.list_apps() == []


async def test_unknown_app(store: SqlStore) -> None:
    for call in (
        store.rotate_secret("nope"),
        store.delete_app("nope"),
        store.update_app("nope", record_calls=True),
        store.add_device("nope", "alice", digest_keys("alice", REALM, "pw")),
        store.add_did("nope", "02873019555", "alice"),
        store.add_trunk("nope", "t", host="10.0.0.1"),
    ):
        with pytest.raises(NotFound, match="'nope' does not exist"):
            await call


async def test_device_stores_ha1_only(store: SqlStore) -> None:
    app = await store.create_app("a")
    dev = await store.add_device(
        app.app_id, "alice", digest_keys("alice", REALM, "s3cret!"), display_name="Alice",
        extension="101",
    )
    assert dev.ha1_md5 == _md5(f"alice:{REALM}:s3cret!")
    assert dev.ha1_sha256 == hashlib.sha256(f"alice:{REALM}:s3cret!".encode()).hexdigest()
    assert dev.ha1_sha256 == ha1("SHA-256", "alice", REALM, "s3cret!")
    assert (dev.realm, dev.display_name, dev.extension) == (REALM, "Alice", "101")
    assert await store.get_device("alice") == dev
    assert "s3cret!" not in repr(dev)

    changed = await store.set_keys("alice", digest_keys("alice", "other.realm", "n3w"))
    assert changed.realm == "other.realm"
    assert changed.ha1_md5 == _md5("alice:other.realm:n3w")
    assert await store.get_device("alice") == changed


async def test_devices_find_list_remove(store: SqlStore) -> None:
    a, b = await store.create_app("a"), await store.create_app("b")
    alice = await store.add_device(a.app_id, "alice",
                                   digest_keys("alice", REALM, "pw"), extension="101")
    bob = await store.add_device(a.app_id, "bob", digest_keys("bob", REALM, "pw"))
    carol = await store.add_device(b.app_id, "carol",
                                   digest_keys("carol", REALM, "pw"), extension="101")
    assert await store.find_device(a.app_id, "alice") == alice
    assert await store.find_device(a.app_id, "101") == alice
    assert await store.find_device(b.app_id, "101") == carol
    assert await store.find_device(a.app_id, "carol") is None  # another app's device
    assert await store.find_device(a.app_id, "102") is None
    assert bob.extension is None
    assert [d.sip_user for d in await store.list_devices(a.app_id)] == ["alice", "bob"]
    assert [d.sip_user for d in await store.list_devices()] == sorted(
        ["alice", "bob", "carol"], key=lambda u: (a.app_id if u != "carol" else b.app_id, u)
    )
    await store.remove_device("bob")
    assert await store.get_device("bob") is None
    with pytest.raises(NotFound):
        await store.remove_device("bob")


async def test_device_name_rules(store: SqlStore) -> None:
    a, b = await store.create_app("a"), await store.create_app("b")
    await store.add_device(a.app_id, "alice", digest_keys("alice", REALM, "pw"), extension="101")
    # sip_user is unique across apps (a REGISTER names only the user).
    with pytest.raises(Conflict, match="'alice' is already taken"):
        await store.add_device(b.app_id, "alice", digest_keys("alice", REALM, "pw"))
    with pytest.raises(Conflict, match="extension 101"):
        await store.add_device(a.app_id, "bob", digest_keys("bob", REALM, "pw"), extension="101")
    # A sip_user that is another device's extension (or the reverse) would make
    # find_device ambiguous.
    with pytest.raises(Conflict, match="extension of device 'alice'"):
        await store.add_device(a.app_id, "101", digest_keys("101", REALM, "pw"))
    await store.add_device(a.app_id, "200", digest_keys("200", REALM, "pw"))
    with pytest.raises(Conflict, match="extension 200"):
        await store.add_device(a.app_id, "dave", digest_keys("dave", REALM, "pw"), extension="200")
    # Another app may use the same extension.
    await store.add_device(b.app_id, "bob", digest_keys("bob", REALM, "pw"), extension="101")
    assert len(await store.list_devices()) == 3


BAD_DEVICES = [
    # (sip_user, password, extension, display name)
    ("", "pw", None, ""),
    ("al ice", "pw", None, ""),
    ("alice@x", "pw", None, ""),
    ("a" * 65, "pw", None, ""),
    ("alice", "", None, ""),
    ("alice", "p\nw", None, ""),
    ("alice", "pw", "1", ""),
    ("alice", "pw", "123456789", ""),
    ("alice", "pw", "10a", ""),
    ("alice", "pw", None, "x" * 101),
]


async def test_device_input_is_checked(store: SqlStore) -> None:
    app = await store.create_app("a")
    for sip_user, password, extension, name in BAD_DEVICES:
        with pytest.raises(Invalid) as err:
            await store.add_device(
                app.app_id, sip_user, digest_keys(sip_user, REALM, password),
                extension=extension, display_name=name)
        assert "\n" not in str(err.value)
    assert await store.list_devices() == []


async def test_dids(store: SqlStore) -> None:
    a = await store.create_app("a")
    await store.add_device(a.app_id, "alice", digest_keys("alice", REALM, "pw"))
    did = await store.add_did(a.app_id, "+84 28 7301 9555", "alice")
    assert (did.number, did.app_id, did.sip_user) == ("02873019555", a.app_id, "alice")
    assert await store.get_did("028-7301-9555") == did
    assert await store.get_did("not a number") is None
    assert await store.list_dids(a.app_id) == [did]
    with pytest.raises(Conflict):
        await store.add_did(a.app_id, "02873019555", "alice")
    with pytest.raises(Invalid, match="not a phone number"):
        await store.add_did(a.app_id, "hello", "alice")
    with pytest.raises(NotFound, match="device 'ghost'"):
        await store.add_did(a.app_id, "02873019556", "ghost")

    # The app's default DID must be its own DID; removing the DID clears it.
    with pytest.raises(NotFound):
        await store.update_app(a.app_id, default_did="02873019999")
    assert (await store.update_app(a.app_id, default_did="+842873019555")).default_did == (
        "02873019555"
    )
    # A DID keeps its device: removal is refused until the DID goes.
    with pytest.raises(Conflict, match="still rings"):
        await store.remove_device("alice")
    await store.remove_did("84 2873019555")
    assert await store.get_did("02873019555") is None
    assert (await store.get_app(a.app_id)).default_did is None  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        await store.remove_did("02873019555")
    await store.remove_device("alice")

    await store.add_device(a.app_id, "bob", digest_keys("bob", REALM, "pw"))
    await store.add_did(a.app_id, "02873019555", "bob")
    await store.update_app(a.app_id, default_did="02873019555")
    assert (await store.update_app(a.app_id, default_did="")).default_did is None


async def test_trunks(store: SqlStore) -> None:
    a = await store.create_app("a")
    t = await store.add_trunk(
        a.app_id, "viettel", host="sip.carrier.vn", port=5070, transport="tcp",
        username="u1", password="p1", prefix="84", strip=1,
    )
    assert t.password is not None and t.password.reveal() == "p1"
    assert (t.name, t.host, t.port, t.transport, t.username, t.prefix, t.strip) == (
        "viettel", "sip.carrier.vn", 5070, "tcp", "u1", "84", 1
    )
    plain = await store.add_trunk(a.app_id, "backup", host="10.0.0.2")
    assert (plain.port, plain.transport, plain.username, plain.password) == (
        5060, "udp", None, None
    )
    assert plain.trunk_id != t.trunk_id
    assert await store.list_trunks(a.app_id) == [t, plain]
    assert await store.list_trunks() == [t, plain]
    with pytest.raises(Conflict, match="'viettel' already exists"):
        await store.add_trunk(a.app_id, "viettel", host="10.0.0.3")
    await store.remove_trunk("viettel", app_id=a.app_id)
    assert await store.list_trunks(a.app_id) == [plain]
    with pytest.raises(NotFound):
        await store.remove_trunk("viettel", app_id=a.app_id)


BAD_TRUNKS: list[dict[str, Any]] = [
    {"name": "bad name"}, {"host": ""}, {"host": "a b"}, {"port": 0}, {"port": 70000},
    {"transport": "tls"}, {"password": "p"}, {"prefix": "8x"}, {"strip": -1},
    {"strip": 16}, {"username": "u", "password": ""},
]


async def test_trunk_input_is_checked(store: SqlStore) -> None:
    a = await store.create_app("a")
    for bad in BAD_TRUNKS:
        args: dict[str, Any] = {"name": "t", "host": "10.0.0.1"} | bad
        with pytest.raises(Invalid):
            await store.add_trunk(a.app_id, **args)
    assert await store.list_trunks() == []


async def test_tenant_isolation(store: SqlStore) -> None:
    a, b = await store.create_app("a"), await store.create_app("b")
    await store.add_device(a.app_id, "alice", digest_keys("alice", REALM, "pw"))
    await store.add_device(b.app_id, "bob", digest_keys("bob", REALM, "pw"))
    await store.add_did(b.app_id, "02873019555", "bob")
    await store.add_trunk(b.app_id, "carrier", host="10.0.0.1")

    # App A cannot reach B's objects by name...
    with pytest.raises(NotFound):
        await store.add_did(a.app_id, "02873019556", "bob")
    with pytest.raises(NotFound):
        await store.remove_device("bob", app_id=a.app_id)
    with pytest.raises(NotFound):
        await store.set_keys("bob", digest_keys("bob", REALM, "x"), app_id=a.app_id)
    with pytest.raises(NotFound):
        await store.remove_did("02873019555", app_id=a.app_id)
    with pytest.raises(NotFound):
        await store.remove_trunk("carrier", app_id=a.app_id)
    with pytest.raises(NotFound):
        await store.update_app(a.app_id, default_did="02873019555")
    # ... nor see them in its lists.
    assert [d.sip_user for d in await store.list_devices(a.app_id)] == ["alice"]
    assert await store.list_dids(a.app_id) == []
    assert await store.list_trunks(a.app_id) == []
    # B's objects are untouched.
    assert await store.get_device("bob") is not None
    assert await store.get_did("02873019555") is not None
    assert len(await store.list_trunks(b.app_id)) == 1
    # Its own app may.
    await store.remove_trunk("carrier", app_id=b.app_id)
    await store.remove_did("02873019555", app_id=b.app_id)
    await store.remove_device("bob", app_id=b.app_id)


async def test_delete_app_takes_everything_it_owns(store: SqlStore) -> None:
    a, b = await store.create_app("a"), await store.create_app("b")
    for app, user, did in ((a, "alice", "02873019555"), (b, "bob", "02873019556")):
        await store.add_device(app.app_id, user, digest_keys(user, REALM, "pw"))
        await store.add_did(app.app_id, did, user)
        await store.add_trunk(app.app_id, "t", host="10.0.0.1")
    await store.update_app(a.app_id, default_did="02873019555")
    await store.delete_app(a.app_id)
    assert [d.sip_user for d in await store.list_devices()] == ["bob"]
    assert [d.number for d in await store.list_dids()] == ["02873019556"]
    assert [t.app_id for t in await store.list_trunks()] == [b.app_id]
    # The names are free again.
    c = await store.create_app("c")
    await store.add_device(c.app_id, "alice", digest_keys("alice", REALM, "pw"))
    await store.add_did(c.app_id, "02873019555", "alice")
