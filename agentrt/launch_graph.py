"""The graph a launch file describes (`LaunchSpec`, `NodeSpec`) and the checks that need all of it.

`agentrt.launch.load_launch` reads each node entry on its own; what can only be
checked once every node is known lives here: wires (the node and output exist,
the message kinds agree, a lossless output feeds one lossless input), ``arm_after`` and
``start_after`` (no circles), and the ``external:`` section (endpoints, ports
that clash with the wires between hosts). Also the helpers that point an error
at its ``file:line`` (shared with `agentrt.launch`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agentrt.errors import LaunchError
from agentrt.node import Node, Port

__all__ = ["NodeSpec", "LaunchSpec", "LOCAL_HOST", "check_wiring", "read_external", "fail_at", "mapping_at", "value_at"]

LOCAL_HOST = "local"
_TCP_RE = re.compile(r"^tcp://([^/:\s]+|\[[0-9A-Fa-f:.]+\]):(\d+)$")
_IPC_PATH_MAX = 107  # sun_path holds 108 bytes, the last a NUL


@dataclass
class NodeSpec:
    """One node of a launch file, resolved and validated."""

    name: str
    class_path: str
    cls: type[Node]
    params: dict[str, Any]
    config: Any
    inputs: dict[str, tuple[str, str]]  # input -> (node, output)
    rate_hz: float | None = None
    restart: str = "on-failure"
    max_restarts: int = 5
    backoff_s: float = 0.2
    backoff_max_s: float = 5.0
    host: str = LOCAL_HOST
    arm_after: tuple[str, ...] = ()
    start_after: tuple[str, ...] = ()  # nodes that must be ready before this one starts
    trace: bool | None = None
    ends_run: bool = False  # when this node exits normally, the whole run stops
    group: str = ""  # a copy of a repeated node: that node's name (its copies end a run together)
    ready_timeout_s: float = 60.0
    heartbeat_timeout_s: float = 3.0
    line: int = 0


@dataclass
class LaunchSpec:
    """A whole launch file, resolved and validated: its nodes, hosts and external endpoints."""

    path: Path
    name: str
    nodes: dict[str, NodeSpec]
    hosts: dict[str, str] = field(default_factory=dict)  # host name -> address
    keys_dir: Path | None = None
    base_port: int = 7600
    external: dict[tuple[str, str], str] = field(default_factory=dict)  # (node, output) -> endpoint outside reads

    def where(self, node: str) -> str:
        return f"{self.path}:{self.nodes[node].line}"

    def consumers(self, node: str, output: str) -> list[tuple[str, str]]:
        """(node, input) pairs wired to ``node.output``."""
        return [(n.name, i) for n in self.nodes.values() for i, src in n.inputs.items() if src == (node, output)]

    def copy_readers(self, node: str, output: str) -> list[tuple[str, str]]:
        """The latest-only inputs wired to a lossless ``node.output``: they read a latest-only copy of it
        (its ``.latest`` wire), so its one lossless reader keeps every message (a logger on the actions)."""
        if not self.output_port(node, output).lossless:
            return []
        return [(n, i) for n, i in self.consumers(node, output) if not self.nodes[n].cls.inputs[i].lossless]

    def lossless_readers(self, node: str, output: str) -> list[tuple[str, str]]:
        """The inputs that take every message of ``node.output`` on its lossless wire."""
        copies = self.copy_readers(node, output)
        return [c for c in self.consumers(node, output) if c not in copies]

    def output_port(self, node: str, output: str) -> Port:
        return self.nodes[node].cls.outputs[output]

    def all_outputs(self) -> list[tuple[str, str]]:
        return [(n, o) for n in sorted(self.nodes) for o in sorted(self.nodes[n].cls.outputs)]

    def crosses_hosts(self, node: str, output: str) -> bool:
        host = self.nodes[node].host
        return any(self.nodes[c].host != host for c, _ in self.consumers(node, output))

    def host_port(self, node: str, output: str) -> int:
        """The tcp port of ``node.output`` when a node on another host reads it (`agentrt.launch`'s docstring)."""
        return self.base_port + self.all_outputs().index((node, output))


def fail_at(path: Path, node: yaml.Node | None, message: str) -> LaunchError:
    """The error for ``message`` at ``node``'s line of ``path`` (line 1 without a node)."""
    line = node.start_mark.line + 1 if node is not None else 1
    return LaunchError(f"{path}:{line}: {message}")


def mapping_at(path: Path, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """A YAML mapping's key -> (key node, value node), refusing a duplicate key (plain YAML keeps the last)."""
    if not isinstance(node, yaml.MappingNode):
        raise fail_at(path, node, f"{what} must be a mapping (key: value), got {node.tag.rsplit(':', 1)[-1]}")
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        if key in out:
            raise fail_at(path, key_node, f"duplicate key '{key}' in {what}")
        out[key] = (key_node, value_node)
    return out


def value_at(node: yaml.Node) -> Any:
    """The Python value of a composed YAML node."""
    return yaml.safe_load(yaml.serialize(node))


def check_wiring(spec: LaunchSpec, raw_nodes: dict[str, tuple[yaml.Node, yaml.Node]]) -> None:
    """Every wire names a node and an output that exist, with the kind the input takes; ``arm_after`` names
    wired inputs; ``start_after`` names other nodes, in no circle; a lossless output feeds one input."""
    path = spec.path
    for node in spec.nodes.values():
        inputs_node = mapping_at(path, raw_nodes[node.name][1], node.name).get("inputs", (None, None))[1]
        for input_name, (src, output) in node.inputs.items():
            if src not in spec.nodes:
                raise fail_at(path, inputs_node, f"input '{input_name}' of node '{node.name}' is wired to "
                            f"'{src}.{output}', but there is no node '{src}' (nodes: {', '.join(spec.nodes)})")
            src_cls = spec.nodes[src].cls
            if output not in src_cls.outputs:
                raise fail_at(path, inputs_node, f"input '{input_name}' of node '{node.name}' is wired to "
                            f"'{src}.{output}', but {src_cls.__name__} has outputs "
                            f"{', '.join(sorted(src_cls.outputs)) or 'none'}")
            out_port, in_port = src_cls.outputs[output], node.cls.inputs[input_name]
            if out_port.message and in_port.message and out_port.message != in_port.message:
                raise fail_at(path, inputs_node, f"input '{input_name}' of node '{node.name}' takes "
                            f"{in_port.message}, but '{src}.{output}' sends {out_port.message}")
        for input_name in node.arm_after:
            if input_name not in node.inputs:
                raise fail_at(path, raw_nodes[node.name][0], f"node '{node.name}' arms after input "
                            f"'{input_name}', which is not wired: add it under inputs:")
    for node in spec.nodes.values():
        for other in node.start_after:
            if other not in spec.nodes or other == node.name:
                raise fail_at(path, raw_nodes[node.name][0], f"node '{node.name}' starts after '{other}', which is "
                            f"{'itself' if other == node.name else 'not a node'} (nodes: {', '.join(spec.nodes)})")
    _check_start_order(spec, raw_nodes)
    for src, output in spec.all_outputs():
        consumers = spec.lossless_readers(src, output)
        if spec.output_port(src, output).lossless and len(consumers) > 1:
            raise fail_at(path, raw_nodes[src][0], f"lossless output '{src}.{output}' is wired to "
                        f"{len(consumers)} lossless inputs ({consumers}); a lossless output feeds exactly one "
                        "lossless input (latest-only inputs may read it too)")
        host = spec.nodes[src].host
        far = [n for n, _ in spec.copy_readers(src, output) if spec.nodes[n].host != host]
        if far:
            raise fail_at(path, raw_nodes[far[0]][0], f"node '{far[0]}' reads a latest-only copy of lossless "
                        f"output '{src}.{output}' from another host; copies stay on one host: place it on "
                        f"host '{host}'")


def read_external(spec: LaunchSpec, section: yaml.Node) -> dict[tuple[str, str], str]:
    """The ``external:`` section: node.output -> an endpoint that programs outside the graph connect to."""
    path = spec.path
    external: dict[tuple[str, str], str] = {}
    taken: dict[str, str] = {}  # endpoint (tcp: its port) -> the output that has it
    crossing = {spec.host_port(n, o): f"{n}.{o}" for n, o in spec.all_outputs() if spec.crosses_hosts(n, o)}
    for key, (key_node, value_node) in mapping_at(path, section, "external").items():
        node, dot, output = key.partition(".")
        if not dot or not node or not output:
            raise fail_at(path, key_node, f"external entry '{key}' must be node.output, e.g. camera.frames")
        if node not in spec.nodes:
            raise fail_at(path, key_node, f"external entry '{key}': there is no node '{node}' "
                        f"(nodes: {', '.join(spec.nodes)})")
        cls = spec.nodes[node].cls
        if output not in cls.outputs:
            raise fail_at(path, key_node, f"external entry '{key}': {cls.__name__} has outputs "
                        f"{', '.join(sorted(cls.outputs)) or 'none'}")
        endpoint = value_at(value_node)
        port = _check_endpoint(path, value_node, key, endpoint)
        consumers = spec.lossless_readers(node, output)
        if spec.output_port(node, output).lossless and consumers:
            raise fail_at(path, key_node, f"lossless output '{key}' already feeds input '{consumers[0][1]}' of node "
                        f"'{consumers[0][0]}'; a lossless output has one reader: unwire it or leave it out here")
        if spec.crosses_hosts(node, output):
            reader = next(c for c, _ in consumers if spec.nodes[c].host != spec.nodes[node].host)
            host = spec.nodes[node].host
            address = spec.hosts.get(host, f"<address of host '{host}'>")
            raise fail_at(path, key_node, f"'{key}' goes to host '{spec.nodes[reader].host}' on "
                        f"tcp://{address}:{spec.host_port(node, output)} (CURVE); an output that crosses "
                        f"hosts cannot also be external")
        if port is not None and port in crossing:
            raise fail_at(path, value_node, f"external entry '{key}': port {port} is the port of the wire "
                        f"'{crossing[port]}' between hosts (base_port {spec.base_port} + its index); pick another")
        slot = str(port) if port is not None else endpoint
        if slot in taken:
            raise fail_at(path, value_node, f"external entry '{key}': {endpoint} is also used by '{taken[slot]}'")
        taken[slot] = key
        external[(node, output)] = endpoint
    return external


def _check_endpoint(path: Path, value_node: yaml.Node, key: str, endpoint: Any) -> int | None:
    """Validate an external endpoint; returns its tcp port (None for ipc)."""
    expected = "tcp://HOST:PORT or ipc:///absolute/path"
    if not isinstance(endpoint, str):
        raise fail_at(path, value_node, f"external entry '{key}' must be an endpoint, {expected}, got {endpoint!r}")
    if endpoint.startswith("tcp://"):
        match = _TCP_RE.match(endpoint)
        if not match:
            raise fail_at(path, value_node, f"external entry '{key}' must be tcp://HOST:PORT, got {endpoint!r}")
        port = int(match.group(2))
        if not 1 <= port <= 65535:
            raise fail_at(path, value_node, f"external entry '{key}': port 1..65535 expected, got {port}")
        return port
    if endpoint.startswith("ipc:///"):
        if len(endpoint) - len("ipc://") > _IPC_PATH_MAX:
            raise fail_at(path, value_node, f"external entry '{key}': the ipc path is too long "
                        f"({len(endpoint) - len('ipc://')} > {_IPC_PATH_MAX} characters); pick a shorter one")
        return None
    raise fail_at(path, value_node, f"external entry '{key}' must be {expected}, got {endpoint!r}")


def _check_start_order(spec: LaunchSpec, raw_nodes: dict[str, tuple[yaml.Node, yaml.Node]]) -> None:
    """``start_after`` must not go round in a circle: none of those nodes would ever start."""
    done: set[str] = set()

    def visit(name: str, chain: list[str]) -> None:
        if name in chain:
            circle = chain[chain.index(name):] + [name]
            raise fail_at(spec.path, raw_nodes[name][0], f"start_after goes round in a circle: {' -> '.join(circle)}; "
                        "none of these nodes would ever start")
        if name not in done:
            for other in spec.nodes[name].start_after:
                visit(other, [*chain, name])
            done.add(name)

    for name in spec.nodes:
        visit(name, [])
