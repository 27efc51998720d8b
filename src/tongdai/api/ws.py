"""The live call-signal websocket: ``/oapi/v1/voice/ws?token=<value>[&since=<seq>]``.

The connection is always accepted first and then, if refused, closed with a code
from ``CLOSE_CODES`` (browsers cannot read an HTTP status of a failed handshake,
but they do see a close code). The full protocol is in ``WS_DOC``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from tongdai.api.auth import sha256_hex
from tongdai.api.hub import EventHub, Mailbox
from tongdai.store.protocol import Configuration, Tokens
from tongdai.throttle import AuthThrottle

log = logging.getLogger("tongdai.api.ws")

BAD_REQUEST = 4000
MISSING_TOKEN = 4001
INVALID_TOKEN = 4003
TOKEN_EXPIRED = 4004
TOO_SLOW = 4008
RATE_LIMITED = 4029
GOING_AWAY = 1001

CLOSE_CODES: dict[int, str] = {
    BAD_REQUEST: "a query parameter (since, epoch) is malformed",
    MISSING_TOKEN: "the token query parameter is missing",
    INVALID_TOKEN: "the token is unknown or was revoked, or its device was removed",
    TOKEN_EXPIRED: "the token has expired (also sent to open sockets when it expires)",
    TOO_SLOW: "the client fell too far behind reading messages",
    RATE_LIMITED: "too many failed authentications from this address",
    GOING_AWAY: "the server is shutting down",
}

# What a send or receive raises once the peer is gone.
_GONE = (WebSocketDisconnect, OSError, RuntimeError)
_SEQ = re.compile(r"\d{1,15}", re.ASCII)
_EPOCH = re.compile(r"[0-9a-f]{1,64}")
MAX_TOKEN_LEN = 256
CLOSE_TIMEOUT = 2.0


class VoiceSocket:
    """Serves one websocket connection at a time per call; holds no per-client state."""

    def __init__(
        self, *, store: Tokens, config: Configuration, hub: EventHub, throttle: AuthThrottle,
        clock: Callable[[], float], ping_interval: float,
    ) -> None:
        self.store = store
        self.config = config
        self.hub = hub
        self.throttle = throttle
        self.clock = clock
        self.ping_interval = ping_interval

    async def __call__(self, websocket: WebSocket) -> None:
        await websocket.accept()
        params = websocket.query_params
        token = params.get("token", "")
        since_raw = params.get("since")
        epoch = params.get("epoch")
        if not token:
            await _close(websocket, MISSING_TOKEN)
            return
        if (since_raw is not None and not _SEQ.fullmatch(since_raw)) or (
            epoch is not None and not _EPOCH.fullmatch(epoch)
        ):
            await _close(websocket, BAD_REQUEST)
            return
        client = websocket.client.host if websocket.client else "unknown"
        if self.throttle.retry_after(client, None, self.clock()) > 0:
            await _close(websocket, RATE_LIMITED)
            return
        token_hash = sha256_hex(token) if len(token) <= MAX_TOKEN_LEN else ""
        tok = await self.store.get_token(token_hash) if token_hash else None
        dev = await self.config.get_device(tok.sip_user) if tok is not None else None
        if tok is None or tok.revoked or dev is None or dev.app_id != tok.app_id:
            self.throttle.failure(client, None, self.clock())
            await _close(websocket, INVALID_TOKEN)
            return
        if tok.expires_at <= self.clock():
            await _close(websocket, TOKEN_EXPIRED)
            return

        if not self.hub.running and not self.hub.closed:
            self.hub.start()
        since = int(since_raw) if since_raw is not None else None
        if since is not None and epoch is not None and epoch != self.hub.epoch:
            since = 0  # another epoch's numbers mean nothing here: replay all we have
        att = self.hub.attach(tok.app_id, tok.sip_user, since)
        first = [json.dumps({
            "type": "hello", "seq": att.last_seq, "epoch": self.hub.epoch,
            "sip_user": tok.sip_user, "expire": int(tok.expires_at),
            "ping_interval": self.ping_interval,
        })]
        if att.gap is not None:
            first.append(json.dumps({"type": "gap", "from": att.gap[0], "to": att.gap[1]}))
        first.extend(att.replay)
        try:
            code = await self._serve(websocket, att.mailbox, first, token_hash, tok.expires_at)
            if code is not None:
                await _close(websocket, code)
        except _GONE:
            pass  # the client went away mid-send
        finally:
            self.hub.detach(tok.app_id, tok.sip_user, att.mailbox)

    async def _serve(
        self, websocket: WebSocket, mailbox: Mailbox, first: list[str], token_hash: str,
        expires_at: float,
    ) -> int | None:
        """Pump messages until a close is due (its code) or the client left (None)."""
        return await _pump(
            websocket, mailbox, self._write(websocket, mailbox, first, token_hash, expires_at),
            log, "websocket task failed")

    async def _write(
        self, websocket: WebSocket, mailbox: Mailbox, first: list[str], token_hash: str,
        expires_at: float,
    ) -> int:
        # hello, gap and replay go first; live messages wait in the mailbox meanwhile.
        for text in first:
            await websocket.send_text(text)
        next_ping = self.clock() + self.ping_interval
        while True:
            now = self.clock()
            if now >= expires_at:
                return TOKEN_EXPIRED
            if now >= next_ping:
                if await self._revoked(token_hash):
                    return INVALID_TOKEN
                await websocket.send_text(json.dumps({"type": "ping", "ts": now}))
                next_ping = now + self.ping_interval
                continue
            try:
                async with asyncio.timeout(min(next_ping, expires_at) - now):
                    msg = await mailbox.get()
            except TimeoutError:
                continue
            if msg is None:
                return TOO_SLOW if mailbox.overflowed else GOING_AWAY
            await websocket.send_text(msg)

    async def _revoked(self, token_hash: str) -> bool:
        try:
            tok = await self.store.get_token(token_hash)
        except Exception:
            # A database hiccup must not drop every live socket; check again next ping.
            log.warning("could not re-check a websocket token", exc_info=True)
            return False
        return tok is None or tok.revoked


async def _pump(
    websocket: WebSocket, mailbox: Mailbox, write: Coroutine[Any, Any, int],
    logger: logging.Logger, failed: str,
) -> int | None:
    """Run ``write`` (which returns the close code it ends with) while reading the
    client, until a close is due (its code) or the client left (None)."""
    reader = asyncio.create_task(_drain(websocket))
    writer = asyncio.create_task(write)
    # Watched apart from the writer, which may be stuck sending to a client that
    # stopped reading: that is exactly when the mailbox overflows.
    finished = asyncio.create_task(mailbox.finished())
    tasks = (reader, writer, finished)
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for r in results:
        if isinstance(r, Exception) and not isinstance(r, _GONE):
            logger.error(failed, exc_info=r)
    if isinstance(results[1], int):
        return results[1]
    if mailbox.overflowed:
        return TOO_SLOW
    if mailbox.closed:
        return GOING_AWAY
    return None


async def _drain(websocket: WebSocket) -> None:
    # Client messages carry no meaning (a {"type": "pong"} is welcome but optional);
    # reading them is how a close from the client is noticed.
    while True:
        msg = await websocket.receive()
        if msg["type"] == "websocket.disconnect":
            return


async def _close(websocket: WebSocket, code: int) -> None:
    if websocket.application_state == WebSocketState.DISCONNECTED:
        return
    # A client that stopped reading may never take the close frame; it is queued
    # behind what the transport holds, and the server drops the connection after.
    with contextlib.suppress(*_GONE, TimeoutError):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await websocket.close(code=code, reason=CLOSE_CODES[code])
