"""Digest answers without qop: the nonce is single use (RFC 2617 §3.2.1 stale=true)."""

from __future__ import annotations

from tongdai.sip import digest
from tongdai.sip.digest import Credentials, DigestServer, Verdict

GOOD = digest.ha1("MD5", "alice", "pbx.test", "secret")


def _server(**kw: int) -> DigestServer:
    return DigestServer(realm="pbx.test", secret=b"k" * 32, nonce_lifetime=60, **kw)


def _no_qop(srv: DigestServer, now: float, entropy: bytes = b"12345678",
            uri: str = "sip:pbx.test") -> Credentials:
    """An RFC 2069-style answer: the client ignores the offered qop."""
    chal = srv.challenges(now, entropy)[0].replace(', qop="auth"', "")
    value = digest.authorization(chal, method="REGISTER", uri=uri, username="alice",
                                 password="secret", cnonce="abc")
    assert value is not None and "qop=" not in value
    creds = Credentials.parse(value)
    assert creds is not None and creds.qop is None
    return creds


def test_an_answer_without_qop_is_accepted_once() -> None:
    srv = _server()
    creds = _no_qop(srv, 1000.0)
    assert srv.verify(creds, "REGISTER", GOOD, 1001.0) is Verdict.OK
    # the replay, at once and later within the nonce lifetime: a fresh challenge
    for t in (1001.0, 1002.5, 1030.0, 1060.0):
        assert srv.verify(creds, "REGISTER", GOOD, t) is Verdict.STALE
    # after the lifetime it is stale for the usual reason, and stays refused
    assert srv.verify(creds, "REGISTER", GOOD, 1061.5) is Verdict.STALE
    assert srv.verify(creds, "REGISTER", GOOD, 5000.0) is Verdict.STALE


def test_a_new_nonce_works_after_the_replay_was_refused() -> None:
    srv = _server()
    first = _no_qop(srv, 1000.0, b"aaaaaaaa")
    assert srv.verify(first, "REGISTER", GOOD, 1000.5) is Verdict.OK
    assert srv.verify(first, "REGISTER", GOOD, 1001.0) is Verdict.STALE
    second = _no_qop(srv, 1001.0, b"bbbbbbbb")
    assert second.nonce != first.nonce
    assert srv.verify(second, "REGISTER", GOOD, 1001.5) is Verdict.OK


def test_a_wrong_answer_does_not_spend_the_nonce() -> None:
    srv = _server()
    creds = _no_qop(srv, 1000.0)
    bad = Credentials(**{**{f: getattr(creds, f) for f in creds.__slots__},
                         "response": "0" * 32})
    assert srv.verify(bad, "REGISTER", GOOD, 1000.5) is Verdict.FAILED
    assert srv.verify(creds, "REGISTER", GOOD, 1001.0) is Verdict.OK


def test_answers_with_qop_still_count_nonces() -> None:
    srv = _server()
    chal = srv.challenges(1000.0, b"12345678")[0]
    for nc in (1, 2, 3):
        value = digest.authorization(chal, method="REGISTER", uri="sip:pbx.test",
                                     username="alice", password="secret", cnonce="c", nc=nc)
        assert value is not None
        creds = Credentials.parse(value)
        assert creds is not None
        assert srv.verify(creds, "REGISTER", GOOD, 1000.0 + nc) is Verdict.OK
        assert srv.verify(creds, "REGISTER", GOOD, 1000.5 + nc) is Verdict.FAILED


def test_spent_nonces_are_forgotten_once_stale_and_memory_is_bounded() -> None:
    srv = _server(spent_memory=3)
    answers = [_no_qop(srv, 1000.0 + i, bytes([65 + i]) * 8) for i in range(5)]
    for i, creds in enumerate(answers[:3]):
        assert srv.verify(creds, "REGISTER", GOOD, 1003.0 + i * 0.1) is Verdict.OK
    # full of nonces that are still fresh: refuse rather than forget one (a fresh
    # challenge, which a client can also answer with qop)
    assert srv.verify(answers[3], "REGISTER", GOOD, 1004.0) is Verdict.STALE
    assert len(srv._spent) == 3
    # once the oldest have gone stale they are dropped and room comes back
    assert srv.verify(answers[4], "REGISTER", GOOD, 1063.5) is Verdict.OK
    assert len(srv._spent) == 1 and len(srv._spent_heap) == 1
    for creds in answers[:4]:
        assert srv.verify(creds, "REGISTER", GOOD, 1063.5) is Verdict.STALE
