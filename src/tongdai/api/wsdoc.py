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


# The app stream's close codes: the device websocket's numbers, for app credentials.
APP_STREAM_CLOSE_CODES: dict[int, str] = {
    1001: "the server is shutting down",
    1011: "the event log could not be read; retry",
    4000: "a malformed since, events, device or batch",
    4001: "no app id or hash",
    4003: "a wrong app id or hash (also sent to an open stream when the app's secret is "
          "rotated or the app is removed)",
    4008: "the client fell too far behind",
    4029: "too many failed authentications from this address",
}


def app_stream_doc(*, ping_interval: float, queue_limit: int) -> str:
    """The app-wide event stream (``/oapi/v1/events/ws``), for ``/docs``."""
    codes = "\n".join(f"| `{c}` | {why} |" for c, why in sorted(APP_STREAM_CLOSE_CODES.items()))
    return f"""
One websocket per app that sees every event of the app (the tenant), and nothing of
another, without a device token. Connect to
`/oapi/v1/events/ws[?events=<bindings>&device=<sipUser>&since=<seq>&batch=1]` with the
app's own credentials: the headers `x-auth-app-id` and
`x-auth-app-hash = sha256(appId + appSecret)`, or, for clients that cannot set headers
on a websocket (browsers), the query parameters `appId` and `hash` (query strings end up
in proxy logs: prefer the headers).

**Query parameters**

- `events`: comma-separated bindings: an event name (`call.ended`), a family
  (`call.*`, `device.*`, `queue.*`, `webhook.*`) or `*` (the default); at most 32.
- `device`: only the events that concern these devices (`sipUser`s, comma-separated or
  repeated; at most 100).
- `since`: the last `seq` the client has; the retained events after it that the
  filters let through come first, then live ones, without a repeat or a hole.
- `batch=1`: one message may carry several events (up to 256), one JSON object per line
  (NDJSON): those written to the event log together, and those that queued up while the
  previous message was being sent; `hello`, `gap` and `ping` are always alone.

**Server → client** (JSON text frames with a `type`)

- `{{"type": "hello", "app_id": "...", "seq": 1042, "events": ["call.*"], "devices": null,
  "ping_interval": {ping_interval}}}` — first, always. `seq` is the app's latest number when
  the client connected.
- `{{"type": "gap", "from": 3, "to": 17}}` — after hello, when the events after `since`
  are no longer retained; read histories for them.
- `{{"type": "<event>", "seq": 1043, "ts": 1796019799.35, "devices": ["alice"],
  "data": {{...}}}}` — an event: `call.ringing`, `call.answered`, `call.ended`, the
  call-control events `call.held`, `call.resumed`, `call.recording_paused`,
  `call.recording_resumed`, `call.transferred`, `call.transfer_failed`,
  `device.registered`, `device.unregistered`, `webhook.disabled`, and the `queue.*` events
  when queues exist. The `data` of a call's events carries its `call_id`, `direction`,
  `class`, `caller`, `callee`, `did_number` and times; `call.ended` also the histories
  fields (`status_detail`, `duration_seconds`, `billing_seconds`, `recording`, ...).
  A click-to-call given `external_id` and `metadata` has them in the `data` of every
  one of its events.
- `{{"type": "ping", "ts": 1796019820.0}}` — every {ping_interval} s. Client messages are
  ignored.

**Sequence numbers.** `seq` numbers every event of the app 1, 2, 3, ... before
filtering (a filtered stream skips numbers; an unfiltered one has no holes). They are
durable: in the database on the embedded default (the latest
`TONGDAI_APP_EVENTS_RETAIN` events of each app, 10,000 by default, are kept for
`since`), in Redis with `TONGDAI_BUS_URL=redis://...`, where every tongdai
process gives the same event the same number and a stream connected to any process sees
the events of all. A hello whose `seq` is below the client's `since` means the
numbering was reset (a new database or Redis): start again from 0.

**Slow clients.** A stream that falls more than {queue_limit} messages behind is closed
with `4008`; reconnect with `since`.

**Close codes** (refusals happen right after the handshake)

| code | meaning |
|---|---|
{codes}
"""
