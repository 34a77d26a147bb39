"""The table of bus protocols: a name in a config -> its packet codec."""

from __future__ import annotations

from agentrt.errors import ConfigError
from sims.real.dynamixel import DynamixelCodec
from sims.real.feetech import FeetechCodec
from sims.real.packets import Codec

__all__ = ["PROTOCOLS", "make_codec"]

PROTOCOLS: dict[str, type[Codec]] = {"feetech": FeetechCodec, "dynamixel": DynamixelCodec}


def make_codec(protocol: str) -> Codec:
    """The codec of a protocol name: 'feetech' or 'dynamixel'."""
    try:
        return PROTOCOLS[protocol]()
    except KeyError:
        raise ConfigError(f"unknown servo protocol '{protocol}': expected one of {', '.join(PROTOCOLS)}") from None
