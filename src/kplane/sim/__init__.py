"""Simulated nodes and pods: Nodes kept Ready by Lease heartbeats, and pods moved through kwok-style stages."""

from kplane.sim.nodes import NodeConfig, default_node_configs, load_node_configs, node_configs_from_yaml
from kplane.sim.simulator import default_stages, run_node_simulator
from kplane.sim.stages import Stage, load_stages, match_stage

__all__ = [
    "NodeConfig",
    "Stage",
    "default_node_configs",
    "default_stages",
    "load_node_configs",
    "load_stages",
    "match_stage",
    "node_configs_from_yaml",
    "run_node_simulator",
]
