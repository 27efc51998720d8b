"""The DTLS identity of the media engine: one self-signed certificate, its fingerprint.

RFC 8827 §6.5 / RFC 5763 §5: a WebRTC endpoint authenticates DTLS by the certificate
fingerprint carried in the signalled SDP (``a=fingerprint``), not by a CA, so a
self-signed certificate made at start-up is the norm (browsers make one per
``RTCPeerConnection``). One certificate serves every leg; each leg has its own DTLS
connection and so its own SRTP keys.
"""

from __future__ import annotations

import datetime
import secrets

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

__all__ = ["DtlsIdentity", "fingerprint_of"]

# RFC 5764 §4.1.2: the one SRTP profile every browser offers.
SRTP_PROFILE = b"SRTP_AES128_CM_SHA1_80"


def fingerprint_of(cert: x509.Certificate) -> str:
    """``sha-256`` fingerprint as SDP writes it: upper-case hex octets joined by ``:``."""
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


class DtlsIdentity:
    """A fresh ECDSA P-256 certificate and the DTLS context that uses it."""

    def __init__(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                             f"tongdai-{secrets.token_hex(4)}")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30))
                .sign(key, hashes.SHA256()))
        self.certificate = cert
        self.fingerprint = fingerprint_of(cert)
        ctx = SSL.Context(SSL.DTLS_METHOD)
        # The peer's certificate is self-signed too: accept it here and compare its
        # fingerprint with the SDP's once the handshake is done (RFC 5763 §5).
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                       lambda *_: True)
        ctx.use_certificate(cert)
        ctx.use_privatekey(key)
        ctx.set_cipher_list(b"HIGH:!CAMELLIA:!aNULL")
        ctx.set_tlsext_use_srtp(SRTP_PROFILE)
        self.context = ctx
