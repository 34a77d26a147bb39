"""agentrt: a real-time runtime for agents that see.

Frame-capture processes stream frames over ZeroMQ into a streaming VideoLLM /
VLA core that answers questions or drives robots. See docs/ and DESIGN.md.
"""

from agentrt.errors import AgentRTError

__version__ = "0.1.0"
__all__ = ["AgentRTError", "__version__"]
