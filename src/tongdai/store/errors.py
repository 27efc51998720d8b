"""Errors the store raises; each message is one sentence fit for an operator."""


class StoreError(Exception):
    """Base of store errors."""


class NotFound(StoreError):
    """The named object does not exist (or belongs to another app)."""


class Conflict(StoreError):
    """The object would duplicate a unique name (sip_user, extension, DID, ...)."""


class Invalid(StoreError):
    """A value is not acceptable (bad number, empty name, ...)."""


class SchemaAhead(StoreError):
    """The database was migrated by a newer tongdai than this one (a rolling upgrade
    in progress, or a version rolled back without its schema): see docs/upgrade.md."""
