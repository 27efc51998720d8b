"""The websocket protocol, as documentation (OpenAPI has no way to describe websockets)."""

from __future__ import annotations

from tongdai.api.ws import CLOSE_CODES


def websocket_doc(*, ping_interval: float, retain: int, queue_limit: int) -> str:
    codes = "\n".join(f"| `{c}` | {why} |" for c, why in sorted(CLOSE_CODES.items()))
    return f"""
Connect with a websocket to `/oapi/v1/voice/ws?token=<value>` where `value` comes from
`POST /oapi/v1/voice/auth_token`. The stream carries the events of that device only.
All messages are JSON text frames with a `type`.

**Server → client**

- `{{"type": "hello", "seq": 41, "epoch": "9f2c...", "sip_user": "thutran",
  "expire": 1767225600, "ping_interval": {ping_interval}}}` — first, always. `seq` is the
  device's latest sequence number at connect time; `expire` is when the token expires.
- `{{"type": "<event>", "seq": 42, "ts": 1767222000.5, "data": {{...}}}}` — an event,
  `<event>` one of `call.ringing`, `call.answered`, `call.ended`, `device.registered`,
  `device.unregistered`. `data` carries `call_id`, `direction`, `caller`, `callee`,
  `did_number`, timestamps, and `status_detail` on `call.ended` (the values of histories).
  Each call gives each event type at most once and exactly one `call.ended`, which is
  its last event.
- `{{"type": "gap", "from": 3, "to": 17}}` — after hello when reconnecting with `since`:
  events `from`..`to` (inclusive) are no longer retained; read histories for them.
- `{{"type": "ping", "ts": 1767222020.0}}` — every {ping_interval} s (a JSON message, not a
  ping frame, so browsers see it too). Clients may answer `{{"type": "pong"}}`; nothing
  else sent by the client has any effect.

**Sequence numbers and reconnecting.** `seq` counts the events of one device: 1, 2, 3, ...
without holes. Remember the last `seq` and the hello's `epoch`; reconnect with
`&since=<seq>&epoch=<epoch>` to receive first the retained events after `seq` (the
server retains the last {retain} per device), then live ones. Numbering is kept in the
server's memory: after a server restart it starts again at 1 and hello carries a new
`epoch`; when the `epoch` you pass differs (or `since` is beyond the current `seq`), you
get everything retained from the start, preceded by a `gap` if the start is gone.
Without `since` you get live events only.

**Slow clients.** Each connection buffers at most {queue_limit} messages; a client that
falls further behind is closed with `4008` and should reconnect with `since`.

**Close codes** (refusals happen right after the handshake):

| code | meaning |
|---|---|
{codes}
"""
