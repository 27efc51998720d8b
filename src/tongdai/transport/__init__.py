"""tongdai.transport."""
