"""The Open API: the four /oapi/v1 endpoints and the live call-signal websocket."""

from tongdai.api.app import WS_PATH, create_api
from tongdai.api.hub import EventHub
from tongdai.api.ws import CLOSE_CODES
from tongdai.throttle import AuthThrottle

__all__ = ["CLOSE_CODES", "WS_PATH", "AuthThrottle", "EventHub", "create_api"]
