import hmac

from tongdai.sip import digest
from tongdai.sip.digest import Credentials, DigestServer, Verdict

# RFC 7616 §3.9.1 example.
USER, REALM, PW = "Mufasa", "http-auth@example.org", "Circle of Life"
NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def test_rfc7616_vectors() -> None:
    for alg, expected in (
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ):
        got = digest.response_digest(
            alg, digest.ha1(alg, USER, REALM, PW), NONCE, "GET", "/dir/index.html",
            "auth", "00000001", CNONCE,
        )
        assert got == expected


def test_nonce_mac_is_hmac_sha256_truncated() -> None:
    # RFC 4231 §4.2 test case 1, then keys shorter than, equal to and longer than
    # SHA-256's 64-byte block (a long key is hashed first, RFC 2104 §2).
    mac = digest.NonceMac(b"\x0b" * 20)
    assert mac(b"Hi There").hex() == "b0344c61d8db38535ca8afceaf0bf12b"
    for key in (b"", b"k" * 32, b"x" * 64, b"y" * 131):
        for message in (b"", b"0123456789abcdef"):
            assert digest.NonceMac(key)(message) == hmac.digest(key, message, "sha256")[:16]


def _server() -> DigestServer:
    return DigestServer(realm="pbx.test", secret=b"k" * 32, nonce_lifetime=60)


def _answer(
    srv: DigestServer, now: float, alg: str, pw: str = "secret", nc: int = 1,
    entropy: bytes = b"12345678",
) -> Credentials:
    chal = next(c for c in srv.challenges(now, entropy) if f"algorithm={alg}" in c)
    value = digest.authorization(
        chal, method="REGISTER", uri="sip:pbx.test", username="alice", password=pw,
        nc=nc, cnonce="abc",
    )
    assert value is not None
    creds = Credentials.parse(value)
    assert creds is not None
    return creds


def test_round_trip_md5_and_sha256() -> None:
    srv = _server()
    for alg in ("MD5", "SHA-256"):
        creds = _answer(srv, 1000.0, alg, entropy=alg.encode().ljust(8, b"-"))
        assert creds.algorithm == alg
        good = digest.ha1(alg, "alice", "pbx.test", "secret")
        assert srv.verify(creds, "REGISTER", good, 1001.0) is Verdict.OK


def test_wrong_password_and_unknown_user_fail_alike() -> None:
    srv = _server()
    creds = _answer(srv, 1000.0, "MD5", pw="wrong")
    good = digest.ha1("MD5", "alice", "pbx.test", "secret")
    assert srv.verify(creds, "REGISTER", good, 1001.0) is Verdict.FAILED
    assert srv.verify(creds, "REGISTER", None, 1001.0) is Verdict.FAILED


def test_stale_nonce_and_method_binding() -> None:
    srv = _server()
    creds = _answer(srv, 1000.0, "MD5")
    good = digest.ha1("MD5", "alice", "pbx.test", "secret")
    assert srv.verify(creds, "REGISTER", good, 1061.0) is Verdict.STALE
    assert srv.verify(creds, "INVITE", good, 1001.0) is Verdict.FAILED
    # stale=true is announced on the next challenge
    assert all("stale=true" in c for c in srv.challenges(1061.0, b"x" * 8, stale=True))


def test_replayed_nonce_count_is_refused() -> None:
    srv = _server()
    good = digest.ha1("MD5", "alice", "pbx.test", "secret")
    first = _answer(srv, 1000.0, "MD5", nc=1)
    assert srv.verify(first, "REGISTER", good, 1001.0) is Verdict.OK
    assert srv.verify(first, "REGISTER", good, 1002.0) is Verdict.FAILED
    # the same nonce with a higher count is fine (RFC 7616 §3.4.5), a lower one is not
    second = _answer(srv, 1000.0, "MD5", nc=2)
    assert second.nonce == first.nonce
    assert srv.verify(second, "REGISTER", good, 1003.0) is Verdict.OK
    assert srv.verify(first, "REGISTER", good, 1004.0) is Verdict.FAILED


def test_forged_nonce_fails() -> None:
    srv = _server()
    other = DigestServer(realm="pbx.test", secret=b"z" * 32)
    good = digest.ha1("MD5", "alice", "pbx.test", "secret")
    creds = _answer(other, 1000.0, "MD5")
    assert srv.verify(creds, "REGISTER", good, 1001.0) is Verdict.FAILED


def test_parse_params_handles_quotes_and_commas() -> None:
    scheme, p = digest.parse_params(
        'Digest username="a,b", realm="r", nonce="n", uri="sip:x", response="f", '
        'qop=auth, nc=00000001, cnonce="c\\"q"'
    )
    assert scheme == "digest"
    assert p["username"] == "a,b" and p["cnonce"] == 'c"q' and p["qop"] == "auth"


def test_malformed_headers_are_none() -> None:
    assert Credentials.parse("Basic abc") is None
    assert Credentials.parse('Digest username="a"') is None
    assert Credentials.parse(
        'Digest username="a", realm="r", nonce="n", uri="u", response="x", algorithm=SHA-512'
    ) is None


def test_pick_challenge_prefers_sha256() -> None:
    srv = _server()
    chal = digest.pick_challenge(srv.challenges(1.0, b"e" * 8))
    assert chal is not None and "SHA-256" in chal
