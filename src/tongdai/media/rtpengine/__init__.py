"""rtpengine as tongdai's media engine (``TONGDAI_MEDIA_ENGINE=rtpengine:HOST:PORT``).

``RtpengineEngine`` implements ``tongdai.media.MediaEngine`` over the ng protocol
(``NgClient``, bencode in ``bencode``); recordings come back as tongdai's MP3s.
"""

from tongdai.media.rtpengine.engine import RtpengineEngine
from tongdai.media.rtpengine.ng import NgClient, NgError
from tongdai.media.rtpengine.session import MediaFeatureUnavailable, RtpengineSession

__all__ = ["MediaFeatureUnavailable", "NgClient", "NgError", "RtpengineEngine",
           "RtpengineSession"]
