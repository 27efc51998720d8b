"""What the Open API needs from media: signed, expiring recording URLs."""

from __future__ import annotations

from typing import Protocol


class RecordingUrls(Protocol):
    def signed_url(self, app_id: str, name: str, now: float) -> tuple[str, int]:
        """(absolute URL under TONGDAI_PUBLIC_URL, unix expiry) for recording ``name``."""
