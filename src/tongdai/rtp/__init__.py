"""tongdai.rtp."""
