"""A device's password becomes what the registrar checks digest answers with.

Device passwords are never stored. ``digest_keys`` keeps only the RFC 7616 §3.4.2 HA1
values ``MD5(user:realm:password)`` and ``SHA-256(user:realm:password)`` (hex), which
is all a registrar needs to verify a digest answer (``sip/digest.py``) and useless as
a password elsewhere. The realm is part of the hash: after changing
``TONGDAI_SIP_DOMAIN`` every device needs ``tongdai device passwd``.
"""

from __future__ import annotations

from tongdai.sip.digest import ha1
from tongdai.store import validate
from tongdai.store.records import DigestKeys


def digest_keys(sip_user: str, realm: str, password: str) -> DigestKeys:
    """The HA1 values of ``password``; ``Invalid`` (store.errors) for an empty,
    overlong or control-character password."""
    validate.password(password)
    return DigestKeys(
        realm=realm,
        ha1_md5=ha1("MD5", sip_user, realm, password),
        ha1_sha256=ha1("SHA-256", sip_user, realm, password),
    )
