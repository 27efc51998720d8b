"""tongdai: an open-source cloud PBX with the Open API of a Vietnamese cloud call centre."""

__version__ = "0.1.0"
