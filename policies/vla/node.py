"""The nano VLA as a runtime node: frames + robot state in, ActionChunks out.

    nodes:
      policy:
        class: policies.vla.node:NanoVLANode
        inputs: {frames: sim.frames, state: sim.state}
        params: {decoding: consistency, device: auto}   # clock and control_hz: the sim's (wired to `state`)

When to plan and which steps to send is ``agentrt.scheduler`` (the same
schedule as ``agentrt eval``'s in-process source):
lockstep: the sim publishes a frame exactly when it needs a chunk (and
republishes it until answered); the node answers each frame seq once, with the
first ``execute_steps`` steps of the chunk it planned, so it plans again as
often as in real time.
Real time: frames arrive at the sim's frame rate; the node plans from the
newest frame as soon as the chunk in flight has at most ``lead_steps`` steps
left, so the next chunk lands before the robot runs out, and drops the steps
that went by while it computed (capture -> now at the control rate).

The instruction comes on the wire: ``RobotState.instruction`` (the sim sets it
from its task), and ``RobotState.episode`` changing resets the policy's memory
(the previous chunk, the feature cache). ``instruction`` (non-empty) overrides
what the robot says, e.g. for a real arm whose driver has no task. With neither,
the node waits and says so once.

Out of domain, never silently:

- The robot: the weights name the robot they were trained on (their metadata;
  ``panda`` for the shipped ones), ``RobotState.robot`` the robot that reports.
  When they differ the node fails with one line (a Panda policy flails on a KUKA
  or an xArm6) unless ``allow_other_robot`` is set, and then it warns, once per
  robot name.
- The words: each new instruction is checked against the model's vocabulary.
  Words it does not know (read as ``unk``) or that come past its 8-word limit are
  logged once, with what the node does: it acts on the words it knows when one of
  them still names the object (a colour or shape: "tap the red cube" works, the
  model was trained with words dropped). Otherwise, with ``unknown_object: hold``
  (the default), it logs an error and answers every frame of that instruction
  with a chunk of no motion (the gripper as it was): the robot holds still and a
  lockstep sim runs the episode out instead of waiting; ``unknown_object: act``
  lets the model guess. An ``instruction`` param that names no object fails the
  start. Telemetry counts ``instructions_unknown_words``,
  ``instructions_refused`` and ``frames_refused`` (frames answered by holding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np

from agentrt.errors import ConfigError, FrameTornError
from agentrt.messages import ActionChunk, Frame, RobotState, now_ns
from agentrt.node import Input, Node, latest, lossless
from agentrt.pixels import to_rgb
from agentrt.scheduler import ChunkSchedule, PlanGate
from policies.vla.model import robot_state
from policies.vocabulary import quote_words

if TYPE_CHECKING:
    from policies.vla.policy import InstructionCheck

__all__ = ["NanoVLANodeConfig", "NanoVLANode"]


@dataclass
class NanoVLANodeConfig:
    instruction: str = ""  # non-empty: tell the policy this instead of RobotState.instruction
    clock: str = "lockstep"  # lockstep | realtime; in a launch file: the sim's (the node wired to `state`)
    control_hz: float = 20.0  # in a launch file: the sim's
    decoding: str = "consistency"  # ar | jacobi | consistency
    weights: str = ""  # empty: the shipped weights for the decoding mode; hf:FOLDER: a Hugging Face VLA checkpoint
    vit_cache: bool = False
    lead_steps: int = 4  # real time: plan when the chunk in flight has this many steps left
    execute_steps: int = 4  # lockstep: send this many steps of each chunk (0 = all), so the sim asks again sooner
    robot: str = ""  # ActionChunk.robot: "" = the robot whose RobotState the chunk was planned from
    threads: int = 1  # the sim needs the other core
    unknown_object: str = "hold"  # an instruction naming no object the model knows: hold (send nothing) | act (guess)
    allow_other_robot: bool = False  # drive a robot the weights were not trained on (warns); false: fail
    # resolved in setup, on the node's own host: the launching host may have no GPU where the node's has one
    device: str = "auto"  # auto (a GPU when there is one) | cpu | cuda | cuda:N
    dtype: str = "float32"  # float32 | bfloat16

    def __post_init__(self) -> None:
        if self.unknown_object not in ("hold", "act"):
            raise ConfigError(f"NanoVLANodeConfig.unknown_object: expected hold or act, got {self.unknown_object!r}")
        _ = self.schedule  # checks clock, control_hz, lead_steps, execute_steps

    @property
    def schedule(self) -> ChunkSchedule:
        return ChunkSchedule(self.clock, self.control_hz, self.lead_steps, self.execute_steps)


class NanoVLANode(Node):
    inputs = {"frames": latest("Frame"), "state": latest("RobotState")}
    outputs = {"actions": lossless("ActionChunk")}
    Config = NanoVLANodeConfig
    params_from_inputs = {"state": ("clock", "control_hz")}  # plan at the robot's clock and rate: set on the sim

    def setup(self) -> None:
        from policies.hfvla.policy import load_policy  # weights hf:FOLDER: a Hugging Face VLA
        from policies.vla.policy import PolicyConfig

        c = self.config
        self.policy = load_policy(PolicyConfig(weights=c.weights, decoding=c.decoding, vit_cache=c.vit_cache, threads=c.threads,
                                              device=c.device, dtype=c.dtype))
        if self.policy.wants_wrist:
            raise ConfigError(f"policy node: {c.weights} take the wrist camera too, which the sim node does not stream; "
                              "run them with `agentrt eval` (in-process) or use scene-only weights")
        self.log.info("nano VLA (%s decoding) on %s, %s", c.decoding, self.policy.device, c.dtype)
        size = self.policy.model.config.image_size
        self.policy.act(np.zeros((size, size, 3), np.uint8), np.zeros(4, np.float32), "warm up")  # first-call costs now
        self.policy.reset()
        self.episode = -1
        self.seq = 0
        self._state: RobotState | None = None
        self._warned_no_instruction = False
        self._gripper: float | None = None  # the last gripper command sent this episode
        self._robots_seen: set[str] = set()
        self._judged: tuple[str, bool] = ("", False)  # the last instruction checked, and whether it is refused
        for name in ("instructions_unknown_words", "instructions_refused", "frames_refused"):
            self.stats.counters[name] = 0
        if c.instruction:  # the param is known now: a refusal fails the start, at once
            check = self.policy.check_instruction(c.instruction)
            if not check.names_object and c.unknown_object == "hold":
                raise ConfigError(f"policy.instruction {c.instruction!r}: {self._words_said(check)}it names no object "
                                  f"the model knows ({self._known_objects()}): reword it, or set "
                                  f"unknown_object=act to let the model guess")
            self._judge(c.instruction)
        self.schedule = c.schedule
        self.gate = PlanGate(self.schedule)  # when to plan: each lockstep frame once; real time with lead_steps left

    def instruction(self, state: RobotState) -> str:
        return self.config.instruction or state.instruction

    def _on_state(self, state: RobotState) -> None:
        if state.robot not in self._robots_seen:
            self._check_robot(state.robot)
        if state.episode != self.episode:
            self.episode = state.episode
            self.policy.reset()
            self.gate.new_episode()
            self._gripper = None
            self.log.info("episode %d: %s", self.episode, self.instruction(state) or "(no instruction)")
        self._state = state

    def run(self) -> None:
        for event in self.events():
            if not isinstance(event, Input):
                continue
            if event.name == "state":  # each input's port fixes its kind: the host drops any other
                self._on_state(cast(RobotState, event.message))
            elif self._state is not None:
                self._on_frame(cast(Frame, event.message))

    def _on_frame(self, frame: Frame) -> None:
        c = self.config
        if not self.gate.due(frame.seq):
            return
        state = self._state
        assert state is not None
        instruction = self.instruction(state)
        if not instruction:
            if not self._warned_no_instruction:
                self.log.warning("no instruction: the robot state carries none and the node's `instruction` param is empty; "
                                 "waiting (set policy.instruction in the launch file)")
                self._warned_no_instruction = True
            return
        if instruction != self._judged[0]:
            self._judge(instruction)
        if self._judged[1]:  # refused: hold still, so a lockstep sim goes on to the episode's end rather than wait
            self.stats.counters["frames_refused"] += 1
            chunk = self._hold_chunk(state)
        else:
            try:
                image = to_rgb(frame)  # the model's channel order, whatever the camera's; never a torn shm view
            except FrameTornError:
                self.stats.count("dropped.torn_frames")
                return
            chunk, info = self.policy.act(image, robot_state(state.ee_pose, state.gripper), instruction)
            self.log.debug("chunk %d: %.1f ms (decode %.1f ms, %d passes)", self.seq, info.total_ms, info.decode_ms,
                           info.iterations)
        chunk = self.schedule.steps_to_run(chunk, t_capture_ns=frame.t_capture_ns)
        self.gate.sent(frame.seq, chunk.shape[0])
        self._gripper = float(chunk[-1, -1])
        self.send("actions", ActionChunk(c.robot or state.robot, self.seq, frame.seq, frame.t_capture_ns, "ee_delta", chunk,
                                         1e3 / c.control_hz, t_sent_ns=now_ns(), hops=list(frame.hops)))
        self.seq += 1

    def _hold_chunk(self, state: RobotState) -> np.ndarray:
        """A whole chunk of no motion, the gripper as last commanded this episode (else as measured: more than a
        quarter closed is closed, so a held object stays held)."""
        mc = self.policy.model.config
        chunk = np.zeros((mc.chunk_steps, mc.action_dims), np.float32)
        chunk[:, -1] = self._gripper if self._gripper is not None else float(state.gripper > 0.25)
        return chunk

    def _check_robot(self, robot: str) -> None:
        """Fail (or, allowed, warn once) on a robot the weights were not trained on."""
        self._robots_seen.add(robot)
        trained = self.policy.robot
        if robot == trained:
            return
        weights = self.config.weights or "the shipped weights"
        if not self.config.allow_other_robot:
            raise ConfigError(f"{weights} were trained on the {trained}, but the robot on the wire is '{robot}': "
                              f"refusing to drive it (use a policy trained on '{robot}', or set "
                              f"allow_other_robot=true to try anyway)")
        self.log.warning("DRIVING '%s' WITH A POLICY TRAINED ON THE %s (allow_other_robot is set): its actions "
                         "were learnt for another arm; expect misses, and keep a hand on the stop", robot,
                         trained.upper())

    def _judge(self, instruction: str) -> bool:
        """Check a new instruction's words once: log what the model does not know and what the node does.
        -> True when the node refuses it (no known object word, ``unknown_object: hold``)."""
        check = self.policy.check_instruction(instruction)
        refused = not check.names_object and self.config.unknown_object == "hold"
        self._judged = (instruction, refused)
        if check.clean:
            return refused
        if check.words.unknown:
            self.stats.counters["instructions_unknown_words"] += 1
        said = f"instruction '{instruction}': {self._words_said(check)}"
        if check.names_object:
            self.log.warning("%sacting on the words it knows (%s): it guesses the rest from them and the scene, "
                             "and may do another task than asked", said, quote_words(check.words.known))
        elif refused:
            self.stats.counters["instructions_refused"] += 1
            self.log.error("%sit names no object the model knows (%s): not acting on it, the robot holds still; "
                           "reword it, or set unknown_object=act to let the model guess", said, self._known_objects())
        else:
            self.log.warning("%sit names no object the model knows (%s); acting anyway (unknown_object=act): the "
                             "model will pick an object and a task by itself", said, self._known_objects())
        return refused

    def _words_said(self, check: InstructionCheck) -> str:
        """"words the model does not know: 'a' (...); ...; " for what is unknown or unread, "" when nothing is."""
        words, parts = check.words, []
        if words.unknown:
            parts.append(f"words the model does not know: {quote_words(words.unknown)} (read as <unk>)")
        if words.cut:
            limit = self.policy.model.config.text_len - 2
            parts.append(f"past its {limit}-word limit, not read: {quote_words(words.cut)}")
        return "".join(f"{part}; " for part in parts)

    def _known_objects(self) -> str:
        return "it knows " + ", ".join(sorted(self.policy.object_words))
