"""A parsed flow against what its app has: devices, queues and prompts, each missing
one named with the path of the node that names it."""

from __future__ import annotations

from collections.abc import Collection

from tongdai.flows.document import Flow, FlowError


def against_app(flow: Flow, *, devices: Collection[str], queues: Collection[str]) -> None:
    """Raise ``FlowError`` at the first device or queue the app does not have
    (``devices``: its sip_users and extensions)."""
    for name, path in flow.refs.queues.items():
        if name not in queues:
            raise FlowError(path, f"no queue {name!r} in this app")
    for name, path in flow.refs.devices.items():
        if name not in devices:
            raise FlowError(path, f"no device {name!r} in this app")


def prompts(flow: Flow, known: Collection[str]) -> None:
    """Raise ``FlowError`` at the first prompt that is neither built in nor the app's."""
    for name, path in flow.refs.prompts.items():
        if name not in known:
            raise FlowError(path, f"no prompt {name!r} (built in or added to this app)")
