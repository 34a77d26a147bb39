"""`agentrt bridge`: run on the robot's computer; serves a real arm to a model on another machine.

Publishes RobotState (tcp, latest-only) and executes ActionChunks (tcp,
lossless) through the robot interface, with its limits and watchdog; CURVE
authenticated (keys from `agentrt keys`). Ctrl-C or SIGTERM: torque off, exit.
See docs/robots.md and docs/protocol.md ("The robot bridge").

    agentrt keys keys/                                   # once; copy keys/ to the model's machine
    agentrt bridge --arm so100 --port /dev/ttyACM0 --calibration calib/so100.json --keys keys/
    agentrt bridge --arm so100 --dry-run --insecure      # no hardware: prints every servo write (127.0.0.1 only)
    agentrt bridge --arm koch --port /dev/ttyUSB0 --calibration calib/koch.json --keys keys/ --control-hz 50
    agentrt bridge --arm so100 --port /dev/ttyACM0 --calibrate calib/so100.json   # record a calibration
    agentrt bridge --arm so101 --port /dev/ttyACM0 --keys keys/ \
        --calibration ~/.cache/huggingface/lerobot/calibration/robots/so101_follower/my_arm.json   # LeRobot's
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sims.real.bridge import RobotBridge


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arm", default="so100", help="so100 or so101 (Feetech), koch (Dynamixel); default so100")
    parser.add_argument("--port", default="/dev/ttyACM0", help="the bus's serial port (default /dev/ttyACM0)")
    parser.add_argument("--baudrate", type=int, default=1_000_000, help="the bus's baud rate (default 1000000)")
    parser.add_argument("--timeout-ms", type=float, default=20.0, help="wait this long for each servo's reply (default 20)")
    parser.add_argument("--calibration", default="", metavar="FILE",
                        help="calibration JSON: agentrt's (see --calibrate) or LeRobot's, unchanged (docs/robots.md)")
    parser.add_argument("--dry-run", action="store_true", help="open no port: an emulated bus answers; print every servo write")
    parser.add_argument("--keys", default="", metavar="DIR", help="CURVE keys from `agentrt keys DIR`")
    parser.add_argument("--insecure", action="store_true", help="no CURVE: anyone who reaches the port moves the robot")
    parser.add_argument("--bind", default="", metavar="ADDRESS",
                        help="interface to listen on (default: 0.0.0.0 with CURVE keys, 127.0.0.1 with --insecure)")
    parser.add_argument("--state-port", type=int, default=7600, help="RobotState out (default 7600; 0 = any free)")
    parser.add_argument("--actions-port", type=int, default=7601, help="ActionChunk in (default 7601; 0 = any free)")
    parser.add_argument("--control-hz", type=float, default=30.0, help="control rate of the arm (default 30)")
    parser.add_argument("--deadline-ms", type=float, default=250.0, help="hold after this long without an action")
    parser.add_argument("--release-after-ms", type=float, default=2000.0, help="torque off after this long without an action")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0 = until Ctrl-C)")
    parser.add_argument("--calibrate", default="", metavar="FILE", help="record a calibration into FILE, then exit")


def run(args: argparse.Namespace) -> int:
    if args.calibrate:
        return _calibrate(args)
    from sims.real.arm import BusArm, BusArmConfig
    from sims.real.bridge import BridgeConfig, RobotBridge

    arm = BusArm(BusArmConfig(
        robot=args.arm, port=args.port, baudrate=args.baudrate, timeout_ms=args.timeout_ms, calibration_path=args.calibration,
        dry_run=args.dry_run, control_hz=args.control_hz, deadline_ms=args.deadline_ms,
        release_after_ms=args.release_after_ms,
    ))
    bridge = RobotBridge(arm, BridgeConfig(bind=args.bind, state_port=args.state_port, actions_port=args.actions_port,
                                           keys_dir=args.keys, insecure=args.insecure))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C: stop now (the robot is still disconnected)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    timer = None
    if args.duration > 0:
        timer = threading.Timer(args.duration, stop.set)
        timer.daemon = True
        timer.start()
    announcer = threading.Thread(target=_announce, args=(bridge, stop), daemon=True)
    announcer.start()
    try:
        bridge.run(stop)
    finally:
        if timer is not None:
            timer.cancel()
        for s, handler in previous.items():
            signal.signal(s, handler)
    print(f"agentrt bridge: stopped; {bridge.states_sent} states sent, {bridge.chunks} chunks executed, "
          f"{bridge.malformed} malformed messages, {bridge.refused} chunks for another robot, "
          f"{arm.stats.clipped} clipped, {arm.stats.rejected} rejected, {arm.stats.watchdog_holds} watchdog holds")
    return 0


def _announce(bridge: RobotBridge, stop: threading.Event) -> None:
    while not stop.is_set():
        if bridge.ready.wait(0.1):
            print(f"agentrt bridge: listening: state {bridge.state_address} actions {bridge.actions_address}", flush=True)
            return


def _calibrate(args: argparse.Namespace) -> int:
    from sims.real.arms import get_arm
    from sims.real.bus import BusConfig, ServoBus
    from sims.real.calibration import Calibrator
    from sims.real.servos import check_servos

    model = get_arm(args.arm)
    bus = ServoBus(BusConfig(port=args.port, protocol=model.protocol, baudrate=args.baudrate,
                             timeout_ms=args.timeout_ms, dry_run=args.dry_run), model.all_ids, models=model.models_by_id)
    bus.open()
    try:
        # The connect's checks: a servo of another arm (or another model) stops here, before the torque goes off.
        check_servos(bus, model.name, model.models_by_id)
        calibrator = Calibrator(bus, model)
        calibrator.begin()
        print("Torque is off: support the arm.")
        input("1. Put the arm in the zero pose (upper arm vertical, forearm and gripper horizontal pointing "
              "forward, gripper closed; docs/robots.md), then press Enter ")
        calibrator.capture_zero()
        print("2. Move every joint slowly through its whole range and open the gripper fully; press Enter when done.")
        done = threading.Event()
        def wait_for_enter() -> None:
            sys.stdin.readline()
            done.set()

        threading.Thread(target=wait_for_enter, daemon=True).start()
        while not done.is_set():
            calibrator.sample()
            time.sleep(0.02)
        calibration = calibrator.finish()
        path = calibration.save(args.calibrate)
    finally:
        bus.close()
    for joint in calibration.joints:
        print(f"  {joint.name:14s} id {joint.id}: zero {joint.zero_steps}, range {joint.min_steps}..{joint.max_steps}")
    if calibration.gripper is not None:
        g = calibration.gripper
        print(f"  {g.name:14s} id {g.id}: closed {g.closed_steps}, open {g.open_steps}")
    print(f"agentrt bridge: calibration saved to {path}")
    return 0
