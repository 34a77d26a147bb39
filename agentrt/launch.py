"""Launch files: YAML that names nodes, their parameters, wiring, restart policy and host placement.

Everything is validated before anything starts; the first problem raises one
`LaunchError` naming ``file:line``. A launch file::

    name: pipeline_demo            # optional, default: the file name
    hosts:                         # optional: where nodes placed off this host run (`agentrt node`)
      robot: {address: 10.0.0.7}
    keys: keys/                    # CURVE keys (`agentrt keys keys/`), needed when hosts are used
    base_port: 7600                # tcp ports for wires between hosts: base_port, base_port + 1, ...
    nodes:
      camera:
        class: agentrt.nodes.synthetic:SyntheticFrameNode    # module:Class, a subclass of agentrt.node.Node
        rate_hz: 100                                      # timed nodes: overrides the class default
        params: {width: 64, height: 48}                   # fields of the node's Config dataclass
      policy:
        class: agentrt.nodes.echo:EchoNode
        inputs: {frames: camera.frames}                   # input: node.output
        restart: on-failure                               # never | on-failure | always
        max_restarts: 5                                   # then the run fails with one clear line
        backoff_s: 0.2                                    # first restart delay, doubled each time
        host: robot                                       # a name under hosts:, default: this host
      robot:
        class: agentrt.nodes.sink:ActionSinkNode
        inputs: {actions: policy.actions}
        arm_after: [actions]                              # receives actions once these are ready
        start_after: [recorder]                           # started once these nodes are ready (nothing missed)
        ends_run: true                                    # its normal exit ends the run (a sim after its episodes)
    external:                      # optional: outputs that programs outside the graph read (docs/protocol.md §4)
      camera.frames: tcp://127.0.0.1:5560                 # node.output: endpoint, bound by the node; no CURVE
      policy.actions: ipc:///tmp/agentrt-demo/actions     # ipc: absolute path; large frames in shared memory

Relative ``keys`` paths are relative to the launch file. A path that does not exist is looked up among
the shipped launch files by name (``sim.yaml``, ``launch/sim.yaml``: `agentrt.resources.find_launch`).

Ports across hosts: the output at position ``i`` in the list of every output of
every node (sorted by node name, then output name; wired or not, whatever its
host) is bound at ``tcp://<its node's host address>:<base_port + i>`` when a
node on another host reads it. Adding a node or an output can move the ports
after it; an ``external:`` tcp endpoint may not use a port of such a wire.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agentrt.configs import parse_set, type_ok
from agentrt.errors import AgentRTError, ConfigError, LaunchError
from agentrt.launch_shared import share_params
from agentrt.node import Node, Port, check_node
from agentrt.resources import find_launch, shipped_launch_files

__all__ = ["NodeSpec", "LaunchSpec", "load_launch", "check_launch", "resolve_class", "build_config",
           "apply_overrides", "RESTART_POLICIES", "LOCAL_HOST"]

RESTART_POLICIES = ("never", "on-failure", "always")
LOCAL_HOST = "local"

# node key -> (python type, default). The one table of what a node entry may hold.
NODE_KEYS: dict[str, tuple[type | tuple[type, ...], Any]] = {
    "class": (str, None),
    "params": (dict, None),
    "inputs": (dict, None),
    "rate_hz": ((int, float), None),
    "restart": (str, "on-failure"),
    "max_restarts": (int, 5),
    "backoff_s": ((int, float), 0.2),
    "backoff_max_s": ((int, float), 5.0),
    "host": (str, LOCAL_HOST),
    "arm_after": (list, None),
    "start_after": (list, None),
    "trace": (bool, None),
    "ends_run": (bool, False),
    "ready_timeout_s": ((int, float), 60.0),
    "heartbeat_timeout_s": ((int, float), 3.0),
}
TOP_KEYS = ("name", "nodes", "hosts", "keys", "base_port", "external")
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
    ready_timeout_s: float = 60.0
    heartbeat_timeout_s: float = 3.0
    line: int = 0


@dataclass
class LaunchSpec:
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

    def output_port(self, node: str, output: str) -> Port:
        return self.nodes[node].cls.outputs[output]

    def all_outputs(self) -> list[tuple[str, str]]:
        return [(n, o) for n in sorted(self.nodes) for o in sorted(self.nodes[n].cls.outputs)]

    def crosses_hosts(self, node: str, output: str) -> bool:
        host = self.nodes[node].host
        return any(self.nodes[c].host != host for c, _ in self.consumers(node, output))

    def host_port(self, node: str, output: str) -> int:
        """The tcp port of ``node.output`` when a node on another host reads it (module docstring)."""
        return self.base_port + self.all_outputs().index((node, output))


def resolve_class(path: str) -> type[Node]:
    """``module:Class`` -> the class; ConfigError if it cannot be imported or is not a node."""
    module_name, _, class_name = path.partition(":")
    if not module_name or not class_name:
        raise ConfigError(f"class must be 'module:Class', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module '{module_name}' for {path!r}: {exc}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"module '{module_name}' has no class '{class_name}'")
    check_node(cls)
    return typing.cast(type[Node], cls)


def build_config(cls: type[Node], params: dict[str, Any]) -> Any:
    """``cls.Config(**params)`` after checking names and types; ConfigError names the bad parameter."""
    config_cls = cls.Config
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    try:
        hints = typing.get_type_hints(config_cls)
    except Exception:  # unresolvable annotations: check names only
        hints = {}
    coerced: dict[str, Any] = {}
    for key, value in params.items():
        if key not in fields:
            raise ConfigError(f"unknown parameter '{key}' for {cls.__name__}: expected one of "
                              f"{', '.join(sorted(fields)) or '(none)'}")
        ok, coerced[key] = type_ok(value, hints.get(key, Any))
        if not ok:
            expected = getattr(hints[key], "__name__", str(hints[key]))
            raise ConfigError(f"parameter '{key}' of {cls.__name__} must be {expected}, got {value!r}")
    try:
        return config_cls(**coerced)
    except AgentRTError as exc:
        raise ConfigError(f"{cls.__name__} config: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{cls.__name__} config rejected {params!r}: {exc}") from None


def apply_overrides(raw_params: dict[str, dict[str, Any]], overrides: list[str]) -> None:
    """Apply ``--set node.param=value`` strings (agentrt.configs.parse_set: values read as YAML) in place."""
    form = "node.param=value like camera.rate_hz=30"
    for target, value in parse_set(overrides, form).items():
        node, dot, param = target.partition(".")
        if not dot or not node or not param:
            raise ConfigError(f"--set: expected {form}, got {target!r}")
        raw_params.setdefault(node, {})[param] = value


def _fail(path: Path, node: yaml.Node | None, message: str) -> LaunchError:
    line = node.start_mark.line + 1 if node is not None else 1
    return LaunchError(f"{path}:{line}: {message}")


def _mapping(path: Path, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise _fail(path, node, f"{what} must be a mapping (key: value), got {node.tag.rsplit(':', 1)[-1]}")
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        if key in out:
            raise _fail(path, key_node, f"duplicate key '{key}' in {what}")
        out[key] = (key_node, value_node)
    return out


def _value(node: yaml.Node) -> Any:
    return yaml.safe_load(yaml.serialize(node))


def load_launch(path: str | Path, overrides: list[str] | None = None) -> LaunchSpec:
    """Read, resolve and validate a launch file; ``overrides`` are ``--set node.param=value`` strings."""
    path = find_launch(path)  # a file here, else a shipped one of that name (agentrt.resources)
    try:
        text = path.read_text()
    except OSError as exc:
        shipped = f" (shipped: {', '.join(shipped_launch_files())})" if isinstance(exc, FileNotFoundError) else ""
        raise LaunchError(f"{path}: cannot read the launch file: {exc.strerror}{shipped}") from None
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise LaunchError(f"{path}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if root is None:
        raise LaunchError(f"{path}:1: the launch file is empty: expected a mapping with 'nodes:'")
    top = _mapping(path, root, "the launch file")
    for key, (key_node, _) in top.items():
        if key not in TOP_KEYS:
            raise _fail(path, key_node, f"unknown key '{key}': expected one of {', '.join(TOP_KEYS)}")
    if "nodes" not in top:
        raise _fail(path, root, "no 'nodes:' section: a launch file needs at least one node")
    name = str(_value(top["name"][1])) if "name" in top else path.stem
    hosts: dict[str, str] = {}
    if "hosts" in top:
        for host, (_hk, hv) in _mapping(path, top["hosts"][1], "hosts").items():
            entry = _mapping(path, hv, f"host '{host}'")
            if set(entry) != {"address"}:
                raise _fail(path, hv, f"host '{host}' takes exactly one key 'address', got {sorted(entry)}")
            hosts[host] = str(_value(entry["address"][1]))
    keys_dir = None
    if "keys" in top:
        keys_value = _value(top["keys"][1])
        if not isinstance(keys_value, str):
            raise _fail(path, top["keys"][1], f"keys must be a directory path, got {keys_value!r}")
        keys_dir = (path.parent / keys_value).resolve()
    base_port = _value(top["base_port"][1]) if "base_port" in top else 7600
    if not isinstance(base_port, int) or not 1024 <= base_port <= 65000:
        raise _fail(path, top.get("base_port", (None, root))[1], f"base_port must be 1024..65000, got {base_port!r}")

    raw_nodes = _mapping(path, top["nodes"][1], "nodes")
    if not raw_nodes:
        raise _fail(path, top["nodes"][1], "'nodes:' is empty: a launch file needs at least one node")
    overrides_by_node: dict[str, dict[str, Any]] = {}
    apply_overrides(overrides_by_node, overrides or [])
    for target in overrides_by_node:
        if target not in raw_nodes:
            raise LaunchError(f"{path}: --set names node '{target}', which is not in the file "
                              f"(nodes: {', '.join(raw_nodes)})")
    nodes = {n: _node(path, n, kn, vn, overrides_by_node.get(n, {}), hosts) for n, (kn, vn) in raw_nodes.items()}
    spec = LaunchSpec(path, name, nodes, hosts, keys_dir, base_port)
    _check_wiring(spec, raw_nodes)
    share_params(spec)  # e.g. the policy's clock and control_hz: the sim's (Node.params_from_inputs)
    if "external" in top:
        spec.external = _external(spec, top["external"][1])
    if any(n.host != LOCAL_HOST for n in nodes.values()) and keys_dir is None:
        raise LaunchError(f"{path}: nodes are placed on other hosts but there is no 'keys:' directory; "
                          f"run `agentrt keys keys/` and add 'keys: keys/'")
    return spec


def _node_value_error(name: str, key: str, value: Any) -> str | None:
    """What is wrong with ``value`` for node key ``key`` (None: nothing). The one check for the file and --set."""
    expected = NODE_KEYS[key][0]
    if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
        names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
        return f"'{key}' of node '{name}' must be {names}, got {value!r}"
    return None


def _node(path: Path, name: str, key_node: yaml.Node, value_node: yaml.Node, overrides: dict[str, Any],
          hosts: dict[str, str]) -> NodeSpec:
    entry = _mapping(path, value_node, f"node '{name}'")
    values: dict[str, Any] = {}
    for key, (kn, vn) in entry.items():
        if key not in NODE_KEYS:
            raise _fail(path, kn, f"unknown key '{key}' in node '{name}': expected one of {', '.join(NODE_KEYS)}")
        values[key] = _value(vn)
        problem = _node_value_error(name, key, values[key])
        if problem:
            raise _fail(path, vn, problem)
    from_set: set[str] = set()  # node keys given by --set: their errors point at the node and say so

    def fail(key: str | None, message: str) -> LaunchError:
        if key in from_set:
            return _fail(path, key_node, f"{message} (from --set {name}.{key})")
        return _fail(path, entry[key][1] if key in entry else key_node, message)

    def set_node_key(key: str, value: Any) -> None:
        problem = _node_value_error(name, key, value)
        if problem:
            from_set.add(key)
            raise fail(key, problem)
        if key == "params":  # --set node.params={a: 1} sets those params; the file's others stay
            value = {**(values.get("params") or {}), **value}
        values[key] = value
        from_set.add(key)

    if "class" in overrides:  # no Config field can be named 'class' (a keyword): it is always the node's class
        set_node_key("class", overrides["class"])
    if "class" not in values:
        raise _fail(path, key_node, f"node '{name}' has no 'class:' (module:Class)")
    try:
        cls = resolve_class(values["class"])
    except ConfigError as exc:
        raise fail("class", str(exc)) from None
    config_fields = {f.name for f in dataclasses.fields(cls.Config)}
    set_params: dict[str, Any] = {}
    for key, value in overrides.items():  # --set: a Config field, else a node key such as rate_hz
        if key == "class":
            continue
        if key in config_fields or key not in NODE_KEYS:
            set_params[key] = value
        else:
            set_node_key(key, value)
    params = {**(values.get("params") or {}), **set_params}
    try:
        config = build_config(cls, params)
    except ConfigError as exc:
        if set_params or "params" in from_set:
            given = ", ".join(f"{name}.{k}" for k in sorted(set_params)) or f"{name}.params"
            raise _fail(path, key_node, f"node '{name}': {exc} (with --set {given})") from None
        raise _fail(path, entry.get("params", entry["class"])[1], f"node '{name}': {exc}") from None
    restart = values.get("restart", "on-failure")
    if restart not in RESTART_POLICIES:
        raise fail("restart", f"restart must be one of {', '.join(RESTART_POLICIES)}, got {restart!r}")
    for key in ("rate_hz", "backoff_s", "backoff_max_s", "ready_timeout_s", "heartbeat_timeout_s", "max_restarts"):
        number = values.get(key)
        if number is not None and (not isinstance(number, (int, float)) or number < 0):
            raise fail(key, f"'{key}' of node '{name}' must be a number >= 0, got {number!r}")
    host = values.get("host", LOCAL_HOST)
    if host != LOCAL_HOST and host not in hosts:
        raise fail("host", f"node '{name}' is placed on host '{host}', which is not under "
                   f"'hosts:' ({', '.join(hosts) or 'none defined'})")
    inputs: dict[str, tuple[str, str]] = {}
    for input_name, source in (values.get("inputs") or {}).items():
        src_node, dot, src_output = str(source).partition(".")
        if not dot or not src_node or not src_output:
            raise fail("inputs", f"input '{input_name}' of node '{name}' must be wired as node.output, got {source!r}")
        if input_name not in cls.inputs:
            raise fail("inputs", f"node '{name}' ({cls.__name__}) has no input '{input_name}': "
                       f"it declares {', '.join(sorted(cls.inputs)) or 'none'}")
        inputs[input_name] = (src_node, src_output)
    arm_after = tuple(str(a) for a in values["arm_after"]) if "arm_after" in values else None
    if arm_after is not None and any(a not in cls.inputs for a in arm_after):
        raise fail("arm_after", f"arm_after of node '{name}' names {list(arm_after)}, but its "
                   f"inputs are {', '.join(sorted(cls.inputs)) or 'none'}")
    return NodeSpec(
        name, values["class"], cls, params, config, inputs,
        rate_hz=float(values["rate_hz"]) if "rate_hz" in values else None, restart=restart,
        max_restarts=int(values.get("max_restarts", 5)), backoff_s=float(values.get("backoff_s", 0.2)),
        backoff_max_s=float(values.get("backoff_max_s", 5.0)), host=host,
        arm_after=arm_after if arm_after is not None else tuple(cls.arm_after), trace=values.get("trace"),
        start_after=tuple(str(n) for n in values.get("start_after") or ()),
        ends_run=bool(values.get("ends_run", False)),
        ready_timeout_s=float(values.get("ready_timeout_s", 60.0)),
        heartbeat_timeout_s=float(values.get("heartbeat_timeout_s", 3.0)), line=key_node.start_mark.line + 1,
    )


def check_launch(spec: LaunchSpec, host: str = LOCAL_HOST) -> None:
    """Run each node's ``preflight`` (files it names exist, ...) for the nodes placed on ``host``.

    `load_launch` checks what the file says; this checks it against this machine, so it runs where the
    nodes will (the supervisor calls it for its host; ``agentrt run --check`` for this one).
    """
    for node in spec.nodes.values():
        if node.host != host:
            continue
        try:
            node.cls.preflight(node.config)
        except AgentRTError as exc:
            raise LaunchError(f"{spec.where(node.name)}: node '{node.name}': {exc}") from None
    if spec.keys_dir is not None:  # the CURVE keys the wires between this host and others need
        here = [n for n in spec.nodes.values() if n.host == host]
        server = any(spec.crosses_hosts(n.name, output) for n in here for output in n.cls.outputs)
        client = any(spec.nodes[src].host != host for n in here for src, _ in n.inputs.values())
        from agentrt.curve import check_keys

        try:
            check_keys(spec.keys_dir, server=server, client=client)
        except ConfigError as exc:
            raise LaunchError(f"{spec.path}: {exc}") from None


def _check_wiring(spec: LaunchSpec, raw_nodes: dict[str, tuple[yaml.Node, yaml.Node]]) -> None:
    path = spec.path
    for node in spec.nodes.values():
        inputs_node = _mapping(path, raw_nodes[node.name][1], node.name).get("inputs", (None, None))[1]
        for input_name, (src, output) in node.inputs.items():
            if src not in spec.nodes:
                raise _fail(path, inputs_node, f"input '{input_name}' of node '{node.name}' is wired to "
                            f"'{src}.{output}', but there is no node '{src}' (nodes: {', '.join(spec.nodes)})")
            src_cls = spec.nodes[src].cls
            if output not in src_cls.outputs:
                raise _fail(path, inputs_node, f"input '{input_name}' of node '{node.name}' is wired to "
                            f"'{src}.{output}', but {src_cls.__name__} has outputs "
                            f"{', '.join(sorted(src_cls.outputs)) or 'none'}")
            out_port, in_port = src_cls.outputs[output], node.cls.inputs[input_name]
            if out_port.message and in_port.message and out_port.message != in_port.message:
                raise _fail(path, inputs_node, f"input '{input_name}' of node '{node.name}' takes "
                            f"{in_port.message}, but '{src}.{output}' sends {out_port.message}")
        for input_name in node.arm_after:
            if input_name not in node.inputs:
                raise _fail(path, raw_nodes[node.name][0], f"node '{node.name}' arms after input "
                            f"'{input_name}', which is not wired: add it under inputs:")
    for node in spec.nodes.values():
        for other in node.start_after:
            if other not in spec.nodes or other == node.name:
                raise _fail(path, raw_nodes[node.name][0], f"node '{node.name}' starts after '{other}', which is "
                            f"{'itself' if other == node.name else 'not a node'} (nodes: {', '.join(spec.nodes)})")
    _check_start_order(spec, raw_nodes)
    for src, output in spec.all_outputs():
        consumers = spec.consumers(src, output)
        if spec.output_port(src, output).lossless and len(consumers) > 1:
            raise _fail(path, raw_nodes[src][0], f"lossless output '{src}.{output}' is wired to "
                        f"{len(consumers)} inputs ({consumers}); a lossless output feeds exactly one input")


def _external(spec: LaunchSpec, section: yaml.Node) -> dict[tuple[str, str], str]:
    """The ``external:`` section: node.output -> an endpoint that programs outside the graph connect to."""
    path = spec.path
    external: dict[tuple[str, str], str] = {}
    taken: dict[str, str] = {}  # endpoint (tcp: its port) -> the output that has it
    crossing = {spec.host_port(n, o): f"{n}.{o}" for n, o in spec.all_outputs() if spec.crosses_hosts(n, o)}
    for key, (key_node, value_node) in _mapping(path, section, "external").items():
        node, dot, output = key.partition(".")
        if not dot or not node or not output:
            raise _fail(path, key_node, f"external entry '{key}' must be node.output, e.g. camera.frames")
        if node not in spec.nodes:
            raise _fail(path, key_node, f"external entry '{key}': there is no node '{node}' "
                        f"(nodes: {', '.join(spec.nodes)})")
        cls = spec.nodes[node].cls
        if output not in cls.outputs:
            raise _fail(path, key_node, f"external entry '{key}': {cls.__name__} has outputs "
                        f"{', '.join(sorted(cls.outputs)) or 'none'}")
        endpoint = _value(value_node)
        port = _check_endpoint(path, value_node, key, endpoint)
        consumers = spec.consumers(node, output)
        if spec.output_port(node, output).lossless and consumers:
            raise _fail(path, key_node, f"lossless output '{key}' already feeds input '{consumers[0][1]}' of node "
                        f"'{consumers[0][0]}'; a lossless output has one reader: unwire it or leave it out here")
        if spec.crosses_hosts(node, output):
            reader = next(c for c, _ in consumers if spec.nodes[c].host != spec.nodes[node].host)
            host = spec.nodes[node].host
            address = spec.hosts.get(host, f"<address of host '{host}'>")
            raise _fail(path, key_node, f"'{key}' goes to host '{spec.nodes[reader].host}' on "
                        f"tcp://{address}:{spec.host_port(node, output)} (CURVE); an output that crosses "
                        f"hosts cannot also be external")
        if port is not None and port in crossing:
            raise _fail(path, value_node, f"external entry '{key}': port {port} is the port of the wire "
                        f"'{crossing[port]}' between hosts (base_port {spec.base_port} + its index); pick another")
        slot = str(port) if port is not None else endpoint
        if slot in taken:
            raise _fail(path, value_node, f"external entry '{key}': {endpoint} is also used by '{taken[slot]}'")
        taken[slot] = key
        external[(node, output)] = endpoint
    return external


def _check_endpoint(path: Path, value_node: yaml.Node, key: str, endpoint: Any) -> int | None:
    """Validate an external endpoint; returns its tcp port (None for ipc)."""
    expected = "tcp://HOST:PORT or ipc:///absolute/path"
    if not isinstance(endpoint, str):
        raise _fail(path, value_node, f"external entry '{key}' must be an endpoint, {expected}, got {endpoint!r}")
    if endpoint.startswith("tcp://"):
        match = _TCP_RE.match(endpoint)
        if not match:
            raise _fail(path, value_node, f"external entry '{key}' must be tcp://HOST:PORT, got {endpoint!r}")
        port = int(match.group(2))
        if not 1 <= port <= 65535:
            raise _fail(path, value_node, f"external entry '{key}': port 1..65535 expected, got {port}")
        return port
    if endpoint.startswith("ipc:///"):
        if len(endpoint) - len("ipc://") > _IPC_PATH_MAX:
            raise _fail(path, value_node, f"external entry '{key}': the ipc path is too long "
                        f"({len(endpoint) - len('ipc://')} > {_IPC_PATH_MAX} characters); pick a shorter one")
        return None
    raise _fail(path, value_node, f"external entry '{key}' must be {expected}, got {endpoint!r}")


def _check_start_order(spec: LaunchSpec, raw_nodes: dict[str, tuple[yaml.Node, yaml.Node]]) -> None:
    """``start_after`` must not go round in a circle: none of those nodes would ever start."""
    done: set[str] = set()

    def visit(name: str, chain: list[str]) -> None:
        if name in chain:
            circle = chain[chain.index(name):] + [name]
            raise _fail(spec.path, raw_nodes[name][0], f"start_after goes round in a circle: {' -> '.join(circle)}; "
                        "none of these nodes would ever start")
        if name not in done:
            for other in spec.nodes[name].start_after:
                visit(other, [*chain, name])
            done.add(name)

    for name in spec.nodes:
        visit(name, [])
