"""Storage: records, the Store protocol and its SQLAlchemy implementation."""

from tongdai.store.errors import Conflict, Invalid, NotFound, StoreError
from tongdai.store.history import CdrPosition, CdrQuery
from tongdai.store.protocol import Store
from tongdai.store.records import AppRec, Cdr, DeviceRec, DidRec, Registration, TokenRec, TrunkRec

__all__ = [
    "AppRec",
    "Cdr",
    "CdrPosition",
    "CdrQuery",
    "Conflict",
    "DeviceRec",
    "DidRec",
    "Invalid",
    "NotFound",
    "Registration",
    "Store",
    "StoreError",
    "TokenRec",
    "TrunkRec",
]
