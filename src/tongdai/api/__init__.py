"""tongdai.api."""
