"""What the Open API needs from the PBX: presence and click-to-call."""

from __future__ import annotations

from typing import Any, Literal, Protocol

# A command on a live call, and a side of it.
ControlOp = Literal["hangup", "hold", "resume", "pause_recording", "resume_recording"]
Side = Literal["caller", "callee"]


class DeviceOffline(Exception):
    """The device has no live registration, so it cannot be rung."""


class InvalidNumber(Exception):
    """The number is neither a device of the app nor a number a carrier can call
    (``numbers.dialable``)."""


class NoRoute(Exception):
    """A number a carrier could call, but none of the app's trunks serves it."""


class CallRefused(Exception):
    """A command on a live call that cannot be done now; ``code`` says why:
    ``call_not_found`` (no such live call of the app), ``call_not_answered``,
    ``not_recording``, ``transfer_in_progress``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class CallControl(Protocol):
    def is_registered(self, sip_user: str) -> bool:
        """True while the device has at least one unexpired binding."""

    async def click_to_call(
        self, *, app_id: str, sip_user: str, number: str, external_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Start a click-to-call and return its call_id at once.

        Rings ``sip_user`` first; when it answers, dials ``number`` through the app's
        dial plan and bridges. Refuses before ringing anyone: DeviceOffline when the
        device is not registered, InvalidNumber or NoRoute when ``number`` cannot be
        dialled. ``external_id`` and ``metadata`` (the integrator's correlation, already
        validated) come back in every event of the call and are kept in its CDR.
        """

    def live_calls(self, app_id: str) -> list[dict[str, Any]]:
        """The app's calls in progress on this server, as ``GET /oapi/v1/calls``
        shows them."""

    def control(self, *, app_id: str, call_id: str, op: ControlOp,
                party: Side | None = None) -> dict[str, Any]:
        """Do ``op`` (hangup, hold, resume, pause_recording, resume_recording) on the
        app's live call; returns the call as ``live_calls`` shows it. ``party``
        (hold/resume): ``caller`` or ``callee``. Raises CallRefused."""

    async def transfer(self, *, app_id: str, call_id: str, to: str,
                       replace: Side | None = None) -> dict[str, Any]:
        """Ring ``to`` (a device of the app or an outside number) in place of one side
        of the answered call (``replace``: ``caller`` or ``callee``; by default the
        app's own device). Raises CallRefused, or InvalidNumber, NoRoute or
        DeviceOffline for a target that cannot be rung."""
