"""Errors of administration beyond the store's (``NotFound``, ``Conflict``, ``Invalid``)."""

from __future__ import annotations

from tongdai.store.errors import StoreError


class Denied(StoreError):
    """The caller may not do this at all (a tenant's key creating apps, ...)."""
