"""deploy/compose.yaml (Docker does not run here: the file is checked as data): the
services a deployment needs, tongdai's environment made of real settings with valid
values, and no two services binding the same host port."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from tests.deploy.nodeports import PortRange, collisions, node_ports, node_settings, parse_ports

DEPLOY = Path(__file__).parents[2] / "deploy"
# Values for the variables compose.yaml requires from the operator.
OPERATOR = {"POSTGRES_PASSWORD": "secret", "TONGDAI_PUBLIC_IP": "203.0.113.10"}
_VAR = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")


def _interpolate(value: str) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?error}, from OPERATOR."""
    def one(m: re.Match[str]) -> str:
        if m.group(1) in OPERATOR:
            return OPERATOR[m.group(1)]
        assert m.group(2) == "-", f"{m.group(1)} is required but has no test value"
        return m.group(3)
    return _VAR.sub(one, value)


def _services() -> dict[str, Any]:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services: dict[str, Any] = doc["services"]
    return services


def _nodes(services: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The tongdai nodes (services running ``tongdai serve``) and their environment."""
    return {name: {k: _interpolate(str(v)) for k, v in svc["environment"].items()}
            for name, svc in services.items()
            if svc.get("image") == "tongdai:latest" and "command" not in svc}


def test_the_deployment_has_every_engine_and_two_nodes() -> None:
    services = _services()
    assert {"postgres", "redis", "rtpengine", "edge", "migrate"} <= services.keys()
    assert len(_nodes(services)) >= 2
    assert services["migrate"]["command"] == ["db", "upgrade"]
    for name in _nodes(services):
        assert services[name]["depends_on"]["migrate"]["condition"] == \
            "service_completed_successfully"
    for name, svc in services.items():
        assert svc["network_mode"] == "host", f"{name}: SIP and RTP need the host's network"
        assert "ports" not in svc, f"{name}: host networking publishes nothing"


def test_every_tongdai_variable_is_a_valid_setting() -> None:
    services = _services()
    for name, env in _nodes(services).items():
        s = node_settings(env)
        assert s.database_url.startswith("postgresql://"), name
        assert s.bus_url.startswith("redis://"), name
        assert str(s.data_dir) == "/var/lib/tongdai", name
    node_settings({k: _interpolate(str(v))
                   for k, v in services["migrate"]["environment"].items()})


def _host_ports(services: dict[str, Any]) -> list[PortRange]:
    nodes = _nodes(services)
    ports: list[PortRange] = []
    for name, env in nodes.items():
        ports += node_ports(name, node_settings(env))
    for name, svc in services.items():
        if name not in nodes and name != "migrate":
            ports += parse_ports(name, svc["x-ports"])
    return ports


def test_no_two_services_bind_the_same_host_port() -> None:
    assert collisions(_host_ports(_services())) == []


def test_a_collision_would_be_found() -> None:
    services = _services()
    services["tongdai-2"]["environment"]["TONGDAI_RTP_PORTS"] = "20500-21499"
    services["tongdai-2"]["environment"]["TONGDAI_HTTP_PORT"] = "5432"
    found = {frozenset((a.owner, b.owner)) for a, b in collisions(_host_ports(services))}
    assert found == {frozenset(("postgres", "tongdai-2")), frozenset(("tongdai-1", "tongdai-2"))}


def test_the_declared_ports_are_those_the_commands_use() -> None:
    services = _services()
    for name in ("postgres", "redis", "rtpengine"):
        command = " ".join(services[name]["command"])
        for r in parse_ports(name, services[name]["x-ports"]):
            assert str(r.first) in command and str(r.last) in command, (name, r)


def test_the_image_runs_tongdai_as_a_user_of_its_own() -> None:
    dockerfile = (DEPLOY / "docker" / "tongdai.Dockerfile").read_text()
    assert dockerfile.startswith("# ") and "FROM python:3.11-slim" in dockerfile
    assert re.search(r"^USER tongdai$", dockerfile, re.M)
    assert 'pip install ".[fast]"' in dockerfile
    assert 'ENTRYPOINT ["tongdai"]' in dockerfile


def test_the_edge_dispatches_to_every_node() -> None:
    services = _services()
    command = " ".join(services["edge"]["command"])
    listed = re.findall(r"\$\$EDGE_HOST (\d+)", command)
    ports = [env["TONGDAI_SIP_PORT"] for env in _nodes(services).values()]
    assert sorted(listed) == sorted(ports)
    assert "deploy/kamailio" not in command and "tongdai-edge.cfg" in command
