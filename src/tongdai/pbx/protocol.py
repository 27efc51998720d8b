"""What the Open API needs from the PBX: presence and click-to-call."""

from __future__ import annotations

from typing import Protocol


class DeviceOffline(Exception):
    """The device has no live registration, so it cannot be rung."""


class CallControl(Protocol):
    def is_registered(self, sip_user: str) -> bool:
        """True while the device has at least one unexpired binding."""

    async def click_to_call(self, *, app_id: str, sip_user: str, number: str) -> str:
        """Start a click-to-call and return its call_id at once.

        Rings ``sip_user`` first; when it answers, dials ``number`` through the app's
        dial plan and bridges. Raises DeviceOffline when the device is not registered.
        """
