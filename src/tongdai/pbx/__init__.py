"""tongdai.pbx."""
