"""The Store over SQLAlchemy 2 async: one class for SQLite (aiosqlite) and PostgreSQL
(asyncpg). Apps, devices, DIDs and trunks live here; registrations, CDRs and tokens
in ``store/registrations.py``, ``store/cdrs.py`` and ``store/tokens.py``.

Device passwords never reach the store: a device keeps the HA1 values
(``DigestKeys``) that ``pbx/credentials.digest_keys`` computes from its password.
"""

from __future__ import annotations

import logging
import secrets
import string
import time
from collections.abc import Sequence

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tongdai import logs
from tongdai.admin.store import AdminTables
from tongdai.appstream.store import AppEventTables
from tongdai.flows.store import FlowTables
from tongdai.store import validate
from tongdai.store.cdrs import CdrTables
from tongdai.store.engine import create_engine, rowcount, upgrade
from tongdai.store.errors import Conflict, Invalid, NotFound
from tongdai.store.history import HistoryQueries
from tongdai.store.models import App, Device, Did, Trunk
from tongdai.store.presence import PresenceQueries
from tongdai.store.records import AppRec, DeviceRec, DidRec, DigestKeys, TrunkRec
from tongdai.store.registrations import RegistrationTables
from tongdai.store.sealing import SecretBox
from tongdai.store.secret_rows import SecretRows, new_app_secret
from tongdai.store.tokens import TokenTables
from tongdai.webhooks.store import WebhookTables

__all__ = ["SqlStore", "no_app", "open_store"]

log = logging.getLogger("tongdai.store")

_APP_ID_ALPHABET = string.ascii_lowercase + string.digits
APP_ID_LENGTH = 20  # 20 x log2(36) = 103 bits: unguessable, and short enough to type


async def open_store(url: str, *, key: bytes, reseal: bool = True) -> SqlStore:
    """Connect to ``url`` (an SQLAlchemy async URL such as ``Settings.db_url``), bring
    the schema up to date, seal secrets left in clear and return the store.

    ``key`` seals app secrets and trunk passwords (``tongdai.keys.store_key``): every
    process using the database needs the same one, else ``KeyMismatch``. Only
    ``tongdai db reset-secrets`` passes ``reseal=False``, to do it its own way.
    """
    engine = create_engine(url)
    store = SqlStore(engine, box=SecretBox(key))
    try:
        await upgrade(engine)
        if reseal and (done := await store.reseal()).sealed:
            logs.event(log, "store.secrets_sealed", count=done.sealed)
    except BaseException:
        await engine.dispose()
        raise
    return store


def _new_app_id() -> str:
    return "".join(secrets.choice(_APP_ID_ALPHABET) for _ in range(APP_ID_LENGTH))


def _device_rec(d: Device) -> DeviceRec:
    return DeviceRec(
        sip_user=d.sip_user, app_id=d.app_id, realm=d.realm, ha1_md5=d.ha1_md5,
        ha1_sha256=d.ha1_sha256, display_name=d.display_name, extension=d.extension,
    )


def _did_rec(d: Did) -> DidRec:
    return DidRec(number=d.number, app_id=d.app_id, sip_user=d.sip_user)


def no_app(app_id: str) -> NotFound:
    return NotFound(f"app {app_id!r} does not exist")


def _no_device(sip_user: str) -> NotFound:
    return NotFound(f"device {sip_user!r} does not exist")


class SqlStore(RegistrationTables, CdrTables, TokenTables, HistoryQueries, PresenceQueries,
               SecretRows, WebhookTables, AppEventTables, FlowTables, AdminTables):
    """``tongdai.store.Store`` on a relational database (see the module docstring)."""

    # Records (the secret columns stay sealed: see store/secret_rows.py) -----

    def _app_rec(self, a: App) -> AppRec:
        return AppRec(
            app_id=a.app_id, app_secret=self._app_secret(a), name=a.name,
            created_at=a.created_at, record_calls=a.record_calls, default_did=a.default_did,
        )

    def _trunk_rec(self, t: Trunk) -> TrunkRec:
        return TrunkRec(
            trunk_id=t.trunk_id, app_id=t.app_id, name=t.name, host=t.host, port=t.port,
            transport=t.transport, username=t.username, password=self._trunk_password(t),
            prefix=t.prefix, strip=t.strip,
            routes=tuple(r for r in t.routes.split(",") if r), priority=t.priority,
        )

    # Apps -----------------------------------------------------------------

    async def create_app(self, name: str) -> AppRec:
        name = validate.text("app name", name, max_len=100, required=True)
        app_id = _new_app_id()
        app = App(
            app_id=app_id, app_secret=self._seal_app_secret(app_id, new_app_secret()),
            name=name, created_at=time.time(), record_calls=True, default_did=None,
        )
        async with self._config_write() as s:
            s.add(app)
        return self._app_rec(app)

    async def get_app(self, app_id: str) -> AppRec | None:
        async with self._read() as s:
            app = await s.get(App, app_id)
            return self._app_rec(app) if app else None

    async def list_apps(self) -> Sequence[AppRec]:
        async with self._read() as s:
            rows = await s.scalars(select(App).order_by(App.created_at, App.app_id))
            return [self._app_rec(a) for a in rows]

    async def rotate_secret(self, app_id: str) -> AppRec:
        """A new app secret. The app's websocket tokens are revoked too: they were
        issued to whoever held the old secret."""
        async with self._config_write() as s:
            app = await s.get(App, app_id)
            if app is None:
                raise no_app(app_id)
            app.app_secret = self._seal_app_secret(app_id, new_app_secret())
            await self._revoke(s, app_id, None)
            return self._app_rec(app)

    async def delete_app(self, app_id: str) -> None:
        """Delete the app and everything it owns (devices, DIDs, trunks, CDRs...)."""
        async with self._config_write() as s:
            result = await s.execute(delete(App).where(App.app_id == app_id))
            if not rowcount(result):
                raise no_app(app_id)

    async def update_app(
        self, app_id: str, *, record_calls: bool | None = None, default_did: str | None = None
    ) -> AppRec:
        """Change settings of an app; ``None`` leaves a value as it is and an empty
        ``default_did`` clears it. The default DID must be one of the app's DIDs."""
        async with self._config_write() as s:
            app = await s.get(App, app_id)
            if app is None:
                raise no_app(app_id)
            if record_calls is not None:
                app.record_calls = record_calls
            if default_did == "":
                app.default_did = None
            elif default_did is not None:
                number = validate.did_number(default_did)
                did = await s.get(Did, number)
                if did is None or did.app_id != app_id:
                    raise NotFound(f"DID {number} is not a DID of app {app_id!r}")
                app.default_did = number
            return self._app_rec(app)

    # Devices ----------------------------------------------------------------

    async def add_device(
        self, app_id: str, sip_user: str, keys: DigestKeys, *,
        display_name: str = "", extension: str | None = None,
    ) -> DeviceRec:
        validate.sip_user(sip_user)
        ext = validate.extension(extension)
        display_name = validate.text("display name", display_name, max_len=100, required=False)
        dev = Device(
            sip_user=sip_user, app_id=app_id, realm=keys.realm, display_name=display_name,
            extension=ext, ha1_md5=keys.ha1_md5, ha1_sha256=keys.ha1_sha256,
        )
        try:
            async with self._config_write() as s:
                if await s.get(App, app_id) is None:
                    raise no_app(app_id)
                if await s.get(Device, sip_user) is not None:
                    raise Conflict(f"sip_user {sip_user!r} is already taken")
                await _check_names(s, app_id, sip_user, ext)
                s.add(dev)
        except IntegrityError:
            raise Conflict(f"device {sip_user!r} conflicts with an existing device") from None
        return _device_rec(dev)

    async def get_device(self, sip_user: str) -> DeviceRec | None:
        async with self._read() as s:
            dev = await s.get(Device, sip_user)
            return _device_rec(dev) if dev else None

    async def find_device(self, app_id: str, name: str) -> DeviceRec | None:
        """The app's device whose sip_user or extension is ``name``."""
        async with self._read() as s:
            dev = await s.scalar(
                select(Device)
                .where(Device.app_id == app_id,
                       or_(Device.sip_user == name, Device.extension == name))
                .order_by((Device.sip_user == name).desc())
                .limit(1)
            )
            return _device_rec(dev) if dev else None

    async def list_devices(self, app_id: str | None = None) -> Sequence[DeviceRec]:
        q = select(Device).order_by(Device.app_id, Device.sip_user)
        if app_id is not None:
            q = q.where(Device.app_id == app_id)
        async with self._read() as s:
            return [_device_rec(d) for d in await s.scalars(q)]

    async def set_keys(
        self, sip_user: str, keys: DigestKeys, *, app_id: str | None = None
    ) -> DeviceRec:
        """A new password for the device, as its ``DigestKeys``."""
        async with self._config_write() as s:
            dev = await s.get(Device, sip_user)
            if dev is None or (app_id is not None and dev.app_id != app_id):
                raise _no_device(sip_user)
            dev.realm, dev.ha1_md5, dev.ha1_sha256 = keys.realm, keys.ha1_md5, keys.ha1_sha256
            return _device_rec(dev)

    async def remove_device(self, sip_user: str, *, app_id: str | None = None) -> None:
        """Remove a device with its registrations and tokens; refused while a DID
        still rings it."""
        async with self._config_write() as s:
            dev = await s.get(Device, sip_user)
            if dev is None or (app_id is not None and dev.app_id != app_id):
                raise _no_device(sip_user)
            number = await s.scalar(select(Did.number).where(Did.sip_user == sip_user).limit(1))
            if number is not None:
                raise Conflict(f"DID {number} still rings device {sip_user!r}; remove it first")
            user = await self.device_users(s, dev.app_id, sip_user, dev.extension)
            if user is not None:
                raise Conflict(f"{user} uses device {sip_user!r}; change it first")
            await s.delete(dev)

    # DIDs -------------------------------------------------------------------

    async def add_did(self, app_id: str, number: str, sip_user: str) -> DidRec:
        did = Did(number=validate.did_number(number), app_id=app_id, sip_user=sip_user)
        try:
            async with self._config_write() as s:
                if await s.get(App, app_id) is None:
                    raise no_app(app_id)
                dev = await s.get(Device, sip_user)
                if dev is None or dev.app_id != app_id:
                    raise _no_device(sip_user)
                if await s.get(Did, did.number) is not None:
                    raise Conflict(f"DID {did.number} is already assigned")
                s.add(did)
        except IntegrityError:
            raise Conflict(f"DID {did.number} is already assigned") from None
        return _did_rec(did)

    async def get_did(self, number: str) -> DidRec | None:
        try:
            key = validate.did_number(number)
        except Invalid:
            return None
        async with self._read() as s:
            did = await s.get(Did, key)
            return _did_rec(did) if did else None

    async def list_dids(self, app_id: str | None = None) -> Sequence[DidRec]:
        q = select(Did).order_by(Did.app_id, Did.number)
        if app_id is not None:
            q = q.where(Did.app_id == app_id)
        async with self._read() as s:
            return [_did_rec(d) for d in await s.scalars(q)]

    async def remove_did(self, number: str, *, app_id: str | None = None) -> None:
        """Remove a DID; if it was its app's default DID, the app has none afterwards."""
        key = validate.did_number(number)
        async with self._config_write() as s:
            did = await s.get(Did, key)
            if did is None or (app_id is not None and did.app_id != app_id):
                raise NotFound(f"DID {key} does not exist")
            await s.execute(
                update(App)
                .where(App.app_id == did.app_id, App.default_did == key)
                .values(default_did=None)
            )
            await s.delete(did)

    # Trunks -----------------------------------------------------------------

    async def add_trunk(
        self, app_id: str, name: str, *, host: str, port: int = 5060, transport: str = "udp",
        username: str | None = None, password: str | None = None,
        prefix: str = "", strip: int = 0, routes: str | Sequence[str] = "", priority: int = 0,
    ) -> TrunkRec:
        validate.trunk(
            name=name, host=host, port=port, transport=transport, username=username,
            password=password, prefix=prefix, strip=strip,
        )
        served = validate.routes(routes if isinstance(routes, str) else list(routes))
        trunk = Trunk(
            app_id=app_id, name=name, host=host, port=port, transport=transport,
            username=username, prefix=prefix, strip=strip,
            routes=",".join(served), priority=validate.priority(priority),
        )
        try:
            async with self._config_write() as s:
                if await s.get(App, app_id) is None:
                    raise no_app(app_id)
                taken = await s.scalar(
                    select(Trunk.trunk_id).where(Trunk.app_id == app_id, Trunk.name == name)
                )
                if taken is not None:
                    raise Conflict(f"trunk {name!r} already exists in this app")
                s.add(trunk)
                await s.flush()  # assigns trunk_id, which the sealed password is bound to
                if password is not None:
                    trunk.password = self._seal_trunk_password(trunk.trunk_id, password)
                return self._trunk_rec(trunk)
        except IntegrityError:
            raise Conflict(f"trunk {name!r} already exists in this app") from None

    async def update_trunk(
        self, name: str, *, app_id: str, routes: str | Sequence[str] | None = None,
        priority: int | None = None,
    ) -> TrunkRec:
        """Change how a trunk is chosen for outbound calls; ``None`` keeps a value and
        empty ``routes`` makes the trunk serve every number."""
        served = None if routes is None else validate.routes(
            routes if isinstance(routes, str) else list(routes))
        if priority is not None:
            validate.priority(priority)
        async with self._config_write() as s:
            trunk = await s.scalar(
                select(Trunk).where(Trunk.app_id == app_id, Trunk.name == name))
            if trunk is None:
                raise NotFound(f"trunk {name!r} does not exist in app {app_id!r}")
            if served is not None:
                trunk.routes = ",".join(served)
            if priority is not None:
                trunk.priority = priority
            return self._trunk_rec(trunk)

    async def list_trunks(self, app_id: str | None = None) -> Sequence[TrunkRec]:
        q = select(Trunk).order_by(Trunk.app_id, Trunk.trunk_id)
        if app_id is not None:
            q = q.where(Trunk.app_id == app_id)
        async with self._read() as s:
            return [self._trunk_rec(t) for t in await s.scalars(q)]

    async def remove_trunk(self, name: str, *, app_id: str) -> None:
        async with self._config_write() as s:
            result = await s.execute(
                delete(Trunk).where(Trunk.app_id == app_id, Trunk.name == name)
            )
            if not rowcount(result):
                raise NotFound(f"trunk {name!r} does not exist in app {app_id!r}")


async def _check_names(s: AsyncSession, app_id: str, sip_user: str, ext: str | None) -> None:
    """The dial plan looks a name up as a sip_user or an extension of the app
    (``find_device``), so within an app no name may mean two devices."""
    names = [Device.extension == sip_user]
    if ext is not None:
        names += [Device.extension == ext, Device.sip_user == ext]
    clash = (await s.execute(
        select(Device.sip_user, Device.extension)
        .where(Device.app_id == app_id, or_(*names))
        .limit(1)
    )).first()
    if clash is None:
        return
    other, other_ext = clash
    if ext is not None and other_ext == ext:
        raise Conflict(f"extension {ext} is already used by device {other!r} of this app")
    if other == ext:
        raise Conflict(f"extension {ext} is the sip_user of another device of this app")
    raise Conflict(f"sip_user {sip_user!r} is the extension of device {other!r} of this app")
