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
        repeat: 4                                         # run 4 copies, robot0..robot3 (or: repeat: OTHER, as many)
        repeat_step: {seed: 100}                          # copy i: seed + 100 * i; "{i}" in a string param: i
    external:                      # optional: outputs that programs outside the graph read (docs/protocol.md §4)
      camera.frames: tcp://127.0.0.1:5560                 # node.output: endpoint, bound by the node; no CURVE
      policy.actions: ipc:///tmp/agentrt-demo/actions     # ipc: absolute path; large frames in shared memory

``repeat``: a fleet of identical nodes in a few lines. Copy i of node ``sim`` is ``sim<i>``; an input wired to
a repeated node from a copy reads the copy of the same index (``link`` repeated as ``sim``: ``link3`` reads
``sim3``), from a node not repeated it is an error; a ``start_after`` naming a repeated node waits for every
copy. ``--set sim.repeat=8`` sets the count; nodes with ``repeat: sim`` follow it. A repeated node with
``ends_run`` ends the run when its last copy has finished.

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
import typing
from pathlib import Path
from typing import Any

import yaml

from agentrt.configs import parse_set, type_ok
from agentrt.errors import AgentRTError, ConfigError, LaunchError
from agentrt.launch_graph import (
    LOCAL_HOST,
    LaunchSpec,
    NodeSpec,
    check_wiring,
    fail_at,
    mapping_at,
    read_external,
    value_at,
)
from agentrt.launch_shared import share_params
from agentrt.node import Node, check_node
from agentrt.resources import find_launch, shipped_launch_files

__all__ = ["NodeSpec", "LaunchSpec", "load_launch", "check_launch", "resolve_class", "build_config",
           "apply_overrides", "RESTART_POLICIES", "LOCAL_HOST"]

RESTART_POLICIES = ("never", "on-failure", "always")

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
    "repeat": ((int, str), None),
    "repeat_step": (dict, None),
}
MAX_REPEAT = 256
TOP_KEYS = ("name", "nodes", "hosts", "keys", "base_port", "external")


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
    top = mapping_at(path, root, "the launch file")
    for key, (key_node, _) in top.items():
        if key not in TOP_KEYS:
            raise fail_at(path, key_node, f"unknown key '{key}': expected one of {', '.join(TOP_KEYS)}")
    if "nodes" not in top:
        raise fail_at(path, root, "no 'nodes:' section: a launch file needs at least one node")
    name = str(value_at(top["name"][1])) if "name" in top else path.stem
    hosts: dict[str, str] = {}
    if "hosts" in top:
        for host, (_hk, hv) in mapping_at(path, top["hosts"][1], "hosts").items():
            entry = mapping_at(path, hv, f"host '{host}'")
            if set(entry) != {"address"}:
                raise fail_at(path, hv, f"host '{host}' takes exactly one key 'address', got {sorted(entry)}")
            hosts[host] = str(value_at(entry["address"][1]))
    keys_dir = None
    if "keys" in top:
        keys_value = value_at(top["keys"][1])
        if not isinstance(keys_value, str):
            raise fail_at(path, top["keys"][1], f"keys must be a directory path, got {keys_value!r}")
        keys_dir = (path.parent / keys_value).resolve()
    base_port = value_at(top["base_port"][1]) if "base_port" in top else 7600
    if not isinstance(base_port, int) or not 1024 <= base_port <= 65000:
        raise fail_at(path, top.get("base_port", (None, root))[1], f"base_port must be 1024..65000, got {base_port!r}")

    raw_nodes = mapping_at(path, top["nodes"][1], "nodes")
    if not raw_nodes:
        raise fail_at(path, top["nodes"][1], "'nodes:' is empty: a launch file needs at least one node")
    overrides_by_node: dict[str, dict[str, Any]] = {}
    apply_overrides(overrides_by_node, overrides or [])
    for target in overrides_by_node:
        if target not in raw_nodes:
            raise LaunchError(f"{path}: --set names node '{target}', which is not in the file "
                              f"(nodes: {', '.join(raw_nodes)})")
    counts = _repeat_counts(path, raw_nodes, overrides_by_node)
    nodes, copies = {}, {}
    for n, (kn, vn) in raw_nodes.items():
        for index in range(counts[n]) if n in counts else [None]:
            node = _node(path, n, kn, vn, overrides_by_node.get(n, {}), hosts, index=index, counts=counts)
            nodes[node.name], copies[node.name] = node, raw_nodes[n]
    spec = LaunchSpec(path, name, nodes, hosts, keys_dir, base_port)
    check_wiring(spec, copies)
    share_params(spec)  # e.g. the policy's clock and control_hz: the sim's (Node.params_from_inputs)
    if "external" in top:
        spec.external = read_external(spec, top["external"][1])
    if any(n.host != LOCAL_HOST for n in nodes.values()) and keys_dir is None:
        raise LaunchError(f"{path}: nodes are placed on other hosts but there is no 'keys:' directory; "
                          f"run `agentrt keys keys/` and add 'keys: keys/'")
    return spec


def _repeat_counts(path: Path, raw_nodes: dict[str, tuple[yaml.Node, yaml.Node]],
                   overrides: dict[str, dict[str, Any]]) -> dict[str, int]:
    """node -> its number of copies, for the nodes with ``repeat`` (a count, or the name of a node to follow)."""
    given: dict[str, Any] = {}
    for n, (_, vn) in raw_nodes.items():
        entry = mapping_at(path, vn, f"node '{n}'")
        if "repeat" in overrides.get(n, {}):
            given[n] = overrides[n].pop("repeat")
        elif "repeat" in entry:
            given[n] = value_at(entry["repeat"][1])
    counts: dict[str, int] = {}
    for n, value in given.items():
        where = raw_nodes[n][0]
        if isinstance(value, str):
            if value not in given or isinstance(given[value], str):
                raise fail_at(path, where, f"node '{n}': repeat: {value!r} must name a node repeated by a count "
                              f"({', '.join(k for k, v in given.items() if isinstance(v, int)) or 'none is'})")
            value = given[value]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_REPEAT:
            raise fail_at(path, where, f"node '{n}': repeat must be a count 1..{MAX_REPEAT} or a repeated node's "
                          f"name, got {value!r}")
        counts[n] = value
    return counts


def _repeat_params(params: dict[str, Any], steps: dict[str, Any], index: int) -> dict[str, Any]:
    """Copy ``index``'s params: numbers moved by ``index`` x their ``repeat_step``, "{i}" in strings filled in."""
    out = {k: v.replace("{i}", str(index)) if isinstance(v, str) else v for k, v in params.items()}
    for key, step in steps.items():
        value = out.get(key)
        if not isinstance(step, (int, float)) or not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"repeat_step: {key} must be a number added to a numeric param, got step {step!r} "
                              f"for {key}={value!r}")
        out[key] = value + index * step
    return out


def _node_value_error(name: str, key: str, value: Any) -> str | None:
    """What is wrong with ``value`` for node key ``key`` (None: nothing). The one check for the file and --set."""
    expected = NODE_KEYS[key][0]
    if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
        names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
        return f"'{key}' of node '{name}' must be {names}, got {value!r}"
    return None


def _node(path: Path, name: str, key_node: yaml.Node, value_node: yaml.Node, overrides: dict[str, Any],
          hosts: dict[str, str], *, index: int | None = None, counts: dict[str, int] | None = None) -> NodeSpec:
    """One node; with ``index``, copy ``index`` of a repeated node (``counts``: every repeated node's copies)."""
    entry = mapping_at(path, value_node, f"node '{name}'")
    counts = counts or {}
    group, name = name, name if index is None else f"{name}{index}"
    values: dict[str, Any] = {}
    for key, (kn, vn) in entry.items():
        if key not in NODE_KEYS:
            raise fail_at(path, kn, f"unknown key '{key}' in node '{name}': expected one of {', '.join(NODE_KEYS)}")
        values[key] = value_at(vn)
        problem = _node_value_error(name, key, values[key])
        if problem:
            raise fail_at(path, vn, problem)
    from_set: set[str] = set()  # node keys given by --set: their errors point at the node and say so

    def fail(key: str | None, message: str) -> LaunchError:
        if key in from_set:
            return fail_at(path, key_node, f"{message} (from --set {name}.{key})")
        return fail_at(path, entry[key][1] if key in entry else key_node, message)

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
        raise fail_at(path, key_node, f"node '{name}' has no 'class:' (module:Class)")
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
        if index is not None:
            params = _repeat_params(params, values.get("repeat_step") or {}, index)
        elif values.get("repeat_step"):
            raise ConfigError("repeat_step without repeat")
        config = build_config(cls, params)
    except ConfigError as exc:
        if set_params or "params" in from_set:
            given = ", ".join(f"{name}.{k}" for k in sorted(set_params)) or f"{name}.params"
            raise fail_at(path, key_node, f"node '{name}': {exc} (with --set {given})") from None
        raise fail_at(path, entry.get("params", entry["class"])[1], f"node '{name}': {exc}") from None
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
        if src_node in counts:  # a repeated source: the copy of this copy's index
            if index is None or counts[src_node] != counts[group]:
                raise fail("inputs", f"input '{input_name}' of node '{group}' reads repeated node '{src_node}': "
                           f"give '{group}' repeat: {src_node} (one copy per copy of '{src_node}')")
            src_node = f"{src_node}{index}"
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
        start_after=_copies(tuple(str(n) for n in values.get("start_after") or ()), counts, index),
        ends_run=bool(values.get("ends_run", False)), group=group if index is not None else "",
        ready_timeout_s=float(values.get("ready_timeout_s", 60.0)),
        heartbeat_timeout_s=float(values.get("heartbeat_timeout_s", 3.0)), line=key_node.start_mark.line + 1,
    )


def _copies(names: tuple[str, ...], counts: dict[str, int], index: int | None) -> tuple[str, ...]:
    """``start_after`` names with repeated nodes resolved: the same index from a copy, else every copy."""
    out: list[str] = []
    for n in names:
        if n not in counts:
            out.append(n)
        elif index is not None and index < counts[n]:
            out.append(f"{n}{index}")
        else:
            out.extend(f"{n}{i}" for i in range(counts[n]))
    return tuple(out)


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


