import tongdai.api


def test_public_surface() -> None:
    assert sorted(tongdai.api.__all__) == [
        "AuthThrottle", "CLOSE_CODES", "EventHub", "WS_PATH", "create_api"]
    for name in tongdai.api.__all__:
        assert getattr(tongdai.api, name) is not None
    assert tongdai.api.WS_PATH == "/oapi/v1/voice/ws"
    assert {4000, 4001, 4003, 4004, 4008, 4029} <= set(tongdai.api.CLOSE_CODES)
