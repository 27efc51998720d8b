"""tongdai.media: the call's media path and its recordings.

``MediaEngine``/``MediaSession`` are the seam the call layer uses; ``RelayEngine`` is
the built-in engine (asyncio RTP/RTCP relay; MP3 recording in encoder processes).
``LegMedia`` is tongdai as a media endpoint on one leg (prompts from a
``PromptLibrary``, music on hold, DTMF, voicemail recording).
``RecordingSigner`` makes and checks signed recording URLs; ``recording_routes``
serves them.
"""

from tongdai.media.engine import Leg, LegMedia, MediaEngine, MediaSession, MediaUnavailable
from tongdai.media.prompts import Prompt, PromptLibrary
from tongdai.media.protocol import RecordingUrls
from tongdai.media.relay import RelayEngine, RelaySession
from tongdai.media.serve import recording_routes
from tongdai.media.urls import RecordingSigner, load_or_create_secret

__all__ = [
    "Leg",
    "LegMedia",
    "MediaEngine",
    "MediaSession",
    "MediaUnavailable",
    "Prompt",
    "PromptLibrary",
    "RecordingSigner",
    "RecordingUrls",
    "RelayEngine",
    "RelaySession",
    "load_or_create_secret",
    "recording_routes",
]
