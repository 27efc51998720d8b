"""The back-to-back user agent: every call is two legs with their own dialogs.

Pure core, in the style of ``tongdai.sip``: ``B2bua.handle(event, now)`` returns the
actions to take; ``driver.CallDriver`` performs them with asyncio. A call's states
and legal moves are in ``state.py``; each feature has its module:

- ``inbound``: INVITEs from devices and carriers (DIDs);
- ``outbound``: ringing the callee — forks, trunks, credentials, failover, ring timeout;
- ``click_to_call``: the agent first, then the number;
- ``in_dialog``: ACK, BYE, relayed re-INVITE / UPDATE / INFO;
- ``ending``: hang-up, durability of the end, the CDR and ``call.ended``.
- ``control``: commands on a live call — hang up, hold and resume, recording pause;
- ``transfer``: one party replaced by another (Open API, or a phone's REFER);
- ``refer``: REFER from phones, blind (RFC 3515) and attended (Replaces, RFC 3891).
"""

from tongdai.pbx.b2bua.core import B2bua, Ids, Limits
from tongdai.pbx.b2bua.messages import Messages

__all__ = ["B2bua", "Ids", "Limits", "Messages"]
