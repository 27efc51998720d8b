from __future__ import annotations

import tongdai.media
import tongdai.rtp


def test_public_surface() -> None:
    assert sorted(tongdai.media.__all__) == [
        "Leg", "LegMedia", "MediaEngine", "MediaSession", "MediaUnavailable", "Prompt",
        "PromptLibrary", "RecordingSigner", "RecordingUrls", "RelayEngine", "RelaySession",
        "load_or_create_secret",
        "recording_routes",
    ]
    for module in (tongdai.media, tongdai.rtp):
        for name in module.__all__:
            assert getattr(module, name) is not None, name
