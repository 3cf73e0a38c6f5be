"""The network model and fault injection of a launched topology: each node's NetPath, the fault controller and its
control port, what topology.json says about them, and the path its clients take (so the CLI, the load generator,
the teaching demo and its page use the same model)."""

from __future__ import annotations

from ..core.netmodel import NetworkModel
from ..net.client import HandleClient
from ..net.faults import ControlServer, FaultController
from ..net.shaping import NetPath
from .plan import NodePlan, TopologyPlan
from .running import RunningNode, Topology
from .state import FaultsEntry, TopologyState

NET_MODES = ("loopback", "model")


class NetModeError(ValueError):
    """`--net model` without a network model to apply."""


def default_net_mode(plan: TopologyPlan) -> str:
    """`model` when the topology has a [network] section (teaching and demo topologies), else `loopback`."""
    return "model" if plan.config.network is not None else "loopback"


def model_for(plan: TopologyPlan, net: str) -> NetworkModel | None:
    if net not in NET_MODES:
        raise NetModeError(f"unknown network mode {net!r} (use loopback or model)")
    if net == "loopback":
        return None
    if plan.config.network is None:
        raise NetModeError(f"{plan.config.source}: --net model needs a [network] section in the topology file "
                           "(or --network FILE, e.g. configs/network-china.toml)")
    return plan.config.network.model(plan.config.seed)


def net_path_for(node: NodePlan, topology: Topology) -> NetPath | None:
    """The path a node's own requests (resolver walks) take: modelled delays, and a source name for partitions."""
    if topology.model is None and topology.faults is None:
        return None
    return NetPath.create(node.node_id, node.region, topology.model, timeout=topology.plan.config.failover.timeout,
                          endpoints=topology.endpoints)


def node_started(topology: Topology, node: RunningNode) -> None:
    """Record where a node listens (for the model) and hand it to the fault controller."""
    host = node.host or node.plan.host  # the address it bound (a worker may bind another than the plan's)
    topology.endpoints[(host, node.server.port)] = node.plan.region
    if topology.faults is not None:
        topology.faults.register(node.plan.node_id, node.server, node.plan.region, host)


async def start_control(topology: Topology) -> None:
    """The control port serving /_sim/fault apart from every node (only with fault injection on)."""
    if topology.faults is not None:
        topology.control = ControlServer(topology.faults)
        await topology.control.start(topology.plan.config.host, 0)


def net_mode(topology: Topology) -> str:
    """What topology.json's `net` says: `model` when the nodes' own hops go through the network model."""
    return "model" if topology.model is not None else "loopback"


def faults_entry(topology: Topology) -> FaultsEntry:
    """What topology.json's `faults` says: on or off, and where the control port listens."""
    control = topology.control
    return FaultsEntry(topology.faults is not None,
                       f"http://{topology.plan.config.host}:{control.port}" if control else None)


def controller_for(plan: TopologyPlan) -> FaultController | None:
    if not plan.config.faults:
        return None
    spec = plan.config.network
    return FaultController(enabled=True, regions=tuple(r.name for r in spec.regions) if spec is not None else ())


def client_path(state: TopologyState, net: str | None, *, region: str | None = None, timeout: float,
                stream: str = "") -> NetPath | None:
    """The path a client (CLI, load generator) of a running topology takes, from its topology.json.

    `net` None follows the topology (`model` when it runs with the model); `model` needs the topology's model.
    Without the model, a path still exists when fault injection is on, so partitions can tell clients apart."""
    mode = net or state.net or "loopback"
    if mode not in NET_MODES:
        raise NetModeError(f"unknown network mode {mode!r} (use loopback or model)")
    if mode == "model" and state.network is None:
        raise NetModeError("the running topology has no network model (start it with a [network] section or "
                           "`up --network configs/network-china.toml`)")
    model = state.network_model if mode == "model" else None
    if model is None and not state.faults.enabled:
        return None
    if region and model is not None and region not in model.regions:
        raise NetModeError(f"no region {region!r} in the network model (known: {', '.join(model.regions)})")
    where = region or (model.client_region if model is not None else "")
    if not where and state.network:
        where = str(state.network.get("client_region") or "")
    return NetPath.create("client", where, model, timeout=timeout, endpoints=state.endpoints, stream=stream)


def topology_client(state: TopologyState, timeout: float, *, net: str | None = None,
                    region: str | None = None) -> HandleClient:
    """A client of the running topology as every command and page takes it: its CA pinned (`up --tls`) and its
    network path followed (`client_path`), so the client's own hops pay the modelled delays when the topology runs
    with the model. NetModeError for a `net` or `region` the topology cannot give."""
    path = client_path(state, net, region=region, timeout=timeout)
    client = HandleClient(timeout=timeout, ssl_context=state.ssl_context())
    client.net = path
    return client
