"""tongdai.media: the call's media path and its recordings.

``MediaEngine``/``MediaSession`` are the seam the call layer uses; ``RelayEngine`` is
the built-in engine (asyncio RTP/RTCP relay; MP3 recording in encoder processes).
``RecordingSigner`` makes and checks signed recording URLs; ``recording_routes``
serves them.
"""

from tongdai.media.engine import Leg, MediaEngine, MediaSession, MediaUnavailable
from tongdai.media.protocol import RecordingUrls
from tongdai.media.relay import RelayEngine, RelaySession
from tongdai.media.serve import recording_routes
from tongdai.media.urls import RecordingSigner, load_or_create_secret

__all__ = [
    "Leg",
    "MediaEngine",
    "MediaSession",
    "MediaUnavailable",
    "RecordingSigner",
    "RecordingUrls",
    "RelayEngine",
    "RelaySession",
    "load_or_create_secret",
    "recording_routes",
]
