"""The live camera QA page: `QAServer` (HTTP: video, questions, streamed answers) and `WebNode` (its node).

See docs/qa.md. `agentrt serve` starts camera -> VideoLLM -> this page.
"""

from agentrt.web.server import QAServer

__all__ = ["QAServer"]
