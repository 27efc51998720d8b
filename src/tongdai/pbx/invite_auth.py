"""Digest authentication of devices' INVITEs with 407 (RFC 3261 §22.3): the INVITE
side of the one gate in ``pbx/digest_gate.py``, where the rule lives.

Failures count towards the same brute-force throttle as REGISTER failures (per address
and per address and user, see ``tongdai.throttle``): a scanner guessing passwords
through INVITEs is blocked like one guessing through REGISTERs.
"""

from __future__ import annotations

from tongdai.pbx.digest_gate import InviteAuth

__all__ = ["InviteAuth"]
