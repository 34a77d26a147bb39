"""Tiny random checkpoints shared by the QA tests (built once per session, offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.qa.tiny_vlms import save_tiny


@pytest.fixture(scope="session")
def tiny_smolvlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny("smolvlm", tmp_path_factory.mktemp("tiny") / "smolvlm")
