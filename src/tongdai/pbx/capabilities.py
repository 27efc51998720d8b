"""What tongdai says about itself in SIP: ``Allow``, ``Supported`` and its name.

Defined once so that every OPTIONS answer, 405/501, INVITE and dialog response
advertises the same thing, and only what is implemented: a peer that sees a method in
``Allow`` (RFC 3261 §20.5) or an option tag in ``Supported`` (§20.37) may use it, and
then must not get a 501. Add a method or an option tag here in the same change that
implements it (PRACK and ``100rel`` with RFC 3262, ``timer`` with RFC 4028).
"""

from __future__ import annotations

from tongdai import __version__

# Requests tongdai answers as a registrar and a B2BUA.
METHODS = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "UPDATE", "INFO",
           "PRACK", "REFER")
ALLOW = ", ".join(METHODS)

# The same, minus REGISTER: what a call leg accepts within its dialog.
DIALOG_METHODS = tuple(m for m in METHODS if m != "REGISTER")
DIALOG_ALLOW = ", ".join(DIALOG_METHODS)

# SIP extensions (option tags, RFC 3261 §19.2) implemented: session timers (RFC 4028)
# and reliable provisional responses (RFC 3262), both ways.
SUPPORTED: tuple[str, ...] = ("timer", "100rel")

# The body types an OPTIONS answer accepts (RFC 3261 §11.2).
ACCEPT = "application/sdp"

# User-Agent in requests, Server in responses (RFC 3261 §20.41, §20.35).
USER_AGENT = f"tongdai/{__version__}"
