"""The pure SIP protocol layer: no sockets, no clock, no asyncio (time comes in as ``now``)."""
