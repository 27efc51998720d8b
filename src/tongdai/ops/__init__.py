"""Operations: health and readiness probes, and Prometheus metrics."""

from tongdai.ops.buslag import BusLag
from tongdai.ops.collector import PbxCollector, Sources
from tongdai.ops.http import Operations
from tongdai.ops.metrics import Metrics
from tongdai.ops.observed import ObservedBus
from tongdai.ops.readiness import Readiness, bus_check, sip_check, store_check

__all__ = [
    "BusLag",
    "Metrics",
    "ObservedBus",
    "Operations",
    "PbxCollector",
    "Readiness",
    "Sources",
    "bus_check",
    "sip_check",
    "store_check",
]
