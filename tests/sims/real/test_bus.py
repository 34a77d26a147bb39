"""Each bus protocol against an emulated servo bus on a pseudo-terminal: instructions and faults."""

from __future__ import annotations

import logging

import pytest

from sims.real.bus import BusConfig, BusError, ServoBus
from sims.real.emulator import PtyBusEmulator

from .conftest import IDS, wait_until


def open_bus(protocol: str, port: str, **overrides: object) -> ServoBus:
    fields: dict[str, object] = {"timeout_ms": 200.0, **overrides}  # generous: the machine may be loaded
    bus = ServoBus(BusConfig(port=port, protocol=protocol, **fields), IDS)  # type: ignore[arg-type]
    bus.open()
    return bus


def test_ping_read_write_sync_read_sync_write(protocol: str, emulator: PtyBusEmulator) -> None:
    bus = open_bus(protocol, emulator.port)
    try:
        bus.ping(3)
        assert bus.read(2, "present_position") == 2048
        bus.write(4, "goal_position", 1500)
        assert emulator.bank.value(4, "goal_position") == 1500
        bus.set_torque(True)
        assert wait_until(lambda: emulator.bank.torque_writes(1) == IDS)
        bus.sync_write("goal_position", {i: 1000 + 10 * i for i in IDS})
        assert bus.sync_read("present_position") == {i: 1000 + 10 * i for i in IDS}  # torque on: present follows goal
        assert bus.sync_read("present_position", [5, 6]) == {5: 1050, 6: 1060}
    finally:
        bus.close()


def test_a_bad_checksum_is_a_clear_error(protocol: str, emulator: PtyBusEmulator) -> None:
    bus = open_bus(protocol, emulator.port)
    emulator.faults.bad_checksum_ids.add(2)
    try:
        with pytest.raises(BusError, match=r"corrupt reply from servo 2 on .*(checksum|CRC)") as info:
            bus.sync_read("present_position")
        assert info.value.servo_id == 2 and not info.value.port_lost
        assert bus.retried == 1  # tried again once before giving up
        emulator.faults.bad_checksum_ids.clear()
        assert len(bus.sync_read("present_position")) == len(IDS)  # the bus recovers
    finally:
        bus.close()


def test_a_missing_servo_is_named(protocol: str, emulator: PtyBusEmulator) -> None:
    bus = open_bus(protocol, emulator.port)
    emulator.faults.missing_ids.add(3)
    try:
        with pytest.raises(BusError, match=r"no reply from servo 3 on .* within 200 ms .*is it powered and wired\?"):
            bus.sync_read("present_position")
        with pytest.raises(BusError, match="no reply from servo 3"):
            bus.ping(3)
        bus.ping(4)  # the others still answer
    finally:
        bus.close()


def test_a_silent_bus_times_out(protocol: str, emulator: PtyBusEmulator) -> None:
    bus = open_bus(protocol, emulator.port, timeout_ms=10, retries=0)
    emulator.faults.silent = True
    try:
        with pytest.raises(BusError, match=r"no reply from servo 1 .*within 10 ms.*baud rate 1000000"):
            bus.sync_read("present_position")
        with pytest.raises(BusError, match="no reply from servo 5"):
            bus.read(5, "present_position")
    finally:
        bus.close()


def test_an_error_bit_in_the_status_is_reported(protocol: str, emulator: PtyBusEmulator) -> None:
    bus = open_bus(protocol, emulator.port)
    bit = {"feetech": 0x20, "dynamixel": 0x80}[protocol]
    emulator.faults.error_bits[4] = bit
    try:
        with pytest.raises(BusError, match=r"servo 4 on .* reports .*(overload|hardware alert).*error byte 0x"):
            bus.read(4, "present_position")
    finally:
        bus.close()


def test_an_unplugged_port_fails_clearly(protocol: str, emulator: PtyBusEmulator) -> None:
    bus = open_bus(protocol, emulator.port)
    try:
        emulator.unplug()
        with pytest.raises(BusError, match=r"port .* failed .*is the USB cable plugged in") as info:
            bus.sync_read("present_position")
        assert info.value.port_lost
        assert bus.retried == 0  # a lost port is not retried
    finally:
        bus.close()


def test_a_port_that_does_not_exist(tmp_path: object) -> None:
    bus = ServoBus(BusConfig(port="/dev/ttyNOPE-agentrt"), IDS)
    with pytest.raises(BusError, match=r"cannot open /dev/ttyNOPE-agentrt.*is the arm plugged in"):
        bus.open()
    assert not bus.is_open


def test_dry_run_opens_no_port_and_logs_every_write(caplog: pytest.LogCaptureFixture) -> None:
    bus = ServoBus(BusConfig(port="/dev/ttyNOPE-agentrt", protocol="feetech", dry_run=True), IDS)
    with caplog.at_level(logging.INFO, logger="sims.real.bus"):
        bus.open()
        bus.sync_write("goal_position", {1: 2100, 2: 1990})
        bus.write(6, "torque_enable", 0)
    assert bus.sync_read("present_position", [1, 2]) == {1: 2048, 2: 2048}  # torque off: nothing moved
    lines = [r.getMessage() for r in caplog.records]
    assert "dry run: SYNC_WRITE goal_position (addr 42, 2 B): 1=2100 2=1990" in lines
    assert "dry run: WRITE torque_enable (addr 40, 1 B): 6=0" in lines


def test_config_is_validated() -> None:
    from agentrt.errors import ConfigError

    with pytest.raises(ConfigError, match="protocol"):
        BusConfig(protocol="rs485")
    with pytest.raises(ConfigError, match="timeout_ms"):
        BusConfig(timeout_ms=0)
