"""tongdai.media."""
