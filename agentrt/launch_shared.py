"""Settings two wired nodes must agree on, given once in a launch file.

A node class names the Config fields it takes from the node wired to one of its
inputs (``Node.params_from_inputs``): the nano VLA plans at the clock and control
rate of the robot whose state it reads, so ``NanoVLANode`` takes ``clock`` and
``control_hz`` from its ``state`` input. A launch file then sets them on the
upstream node only (``--set sim.clock=lockstep`` switches both); a node that
sets one too must give the same value, or `load_launch` (and so ``agentrt run``
and ``--check``) fails with one line naming both. An upstream node whose Config
has no such field imposes nothing.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from agentrt.errors import AgentRTError, LaunchError

if TYPE_CHECKING:
    from agentrt.launch_graph import LaunchSpec

__all__ = ["share_params"]


def share_params(spec: LaunchSpec) -> None:
    """Copy each node's upstream settings into its params and config, in place; LaunchError when they disagree."""
    for node in spec.nodes.values():
        for input_name, fields in node.cls.params_from_inputs.items():
            if input_name not in node.inputs:
                continue
            source_name = node.inputs[input_name][0]
            source = spec.nodes[source_name].config
            for field in fields:
                if not hasattr(source, field):
                    continue
                value = getattr(source, field)
                if field in node.params:
                    mine = getattr(node.config, field)
                    if mine != value:
                        raise LaunchError(
                            f"{spec.where(node.name)}: node '{node.name}' has {field}={mine!r} but '{source_name}', "
                            f"which feeds its '{input_name}' input, has {field}={value!r}: they must agree; give "
                            f"{field} once, on '{source_name}' (--set {source_name}.{field}=...)")
                    continue
                try:
                    node.config = dataclasses.replace(node.config, **{field: value})
                except AgentRTError as exc:
                    raise LaunchError(f"{spec.where(node.name)}: node '{node.name}' with {field}={value!r} "
                                      f"from '{source_name}': {exc}") from None
                node.params[field] = value  # the node's process builds its config from these
