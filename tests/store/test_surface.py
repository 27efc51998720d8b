"""The store's surface: narrow protocols, one class implementing them, nothing extra."""

from __future__ import annotations

import inspect

from tongdai.store import protocol
from tongdai.store.sql import SqlStore


def _protocols() -> dict[str, set[str]]:
    return {
        name: {k for k in vars(cls) if not k.startswith("_")}
        for name, cls in vars(protocol).items()
        if inspect.isclass(cls) and cls.__module__ == protocol.__name__
    }


def test_sql_store_implements_every_narrow_protocol() -> None:
    narrow = _protocols()
    assert {"Configuration", "Administration", "Registrations", "CallRecords", "Histories",
            "Tokens", "Store"} <= set(narrow)
    for name, members in narrow.items():
        missing = {m for m in members if not hasattr(SqlStore, m)}
        assert not missing, (name, missing)


def test_no_method_only_tests_would_call() -> None:
    # What only tests used went to tests/store/support.py or to the product's own path
    # (sync_registrations, write_calls); the store keeps what tongdai itself calls.
    for name in ("save_registration", "delete_registration", "add_cdrs", "get_cdr",
                 "save_checkpoint", "revoke_tokens"):
        assert not hasattr(SqlStore, name), name
