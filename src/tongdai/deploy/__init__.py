"""The multi-node topology on one machine, without containers: a Kamailio edge in
front of N tongdai nodes sharing one PostgreSQL database and one Redis (``deploy/run``,
docs/scaling.md). The tests start it through ``Topology`` too."""

from tongdai.deploy.topology import Node, Topology, TopologySpec

__all__ = ["Node", "Topology", "TopologySpec"]
