"""``hf:ORG/NAME``: cache first, a download when a hub is reachable, one line when not. Never a real network call:
``snapshot_download`` is replaced in every test that reaches it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import huggingface_hub
import pytest
from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError

from agentrt.cli.__main__ import main
from agentrt.errors import ModelError
from agentrt.messages import Answer, Query
from agentrt.testing import MockNode, fake_frame
from policies.qa.hub import is_hub_name, resolve_hf_path
from policies.qa.node import VideoQANode, check_qa_model

NAME = "HuggingFaceTB/SmolVLM2-256M-Video-Instruct"


class _Hub:
    """A fake ``snapshot_download``: what it was asked, and what each kind of call does."""

    def __init__(self, *, cached: Path | None = None, download: Path | BaseException | None = None) -> None:
        self.cached, self.download, self.calls = cached, download, []  # type: list[dict[str, Any]]

    def __call__(self, repo_id: str, **kwargs: Any) -> str:
        self.calls.append({"repo_id": repo_id, **kwargs})
        if kwargs.get("local_files_only"):
            if self.cached is None:
                raise LocalEntryNotFoundError("not in the cache")
            return str(self.cached)
        if isinstance(self.download, BaseException):
            raise self.download
        if self.download is None:
            raise AssertionError("a download was attempted")
        return str(self.download)


def _not_found() -> RepositoryNotFoundError:
    """The hub's 404, without the HTTP response its constructor reads."""
    error = RepositoryNotFoundError.__new__(RepositoryNotFoundError)
    Exception.__init__(error, "404 Client Error: Repository Not Found")
    return error


@pytest.fixture
def no_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def _install(monkeypatch: pytest.MonkeyPatch, hub: _Hub) -> _Hub:
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub)
    return hub


def test_a_local_folder_wins_over_a_hub_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = _install(monkeypatch, _Hub())
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "name").mkdir(parents=True)
    assert not is_hub_name("org/name") and resolve_hf_path("org/name") == Path("org/name")
    assert not is_hub_name("models/a/b") and not is_hub_name("/abs/path") and is_hub_name("org/other")
    assert hub.calls == []


def test_a_cache_hit_is_used_without_a_download(tiny_smolvlm: Path, monkeypatch: pytest.MonkeyPatch,
                                                no_offline: None) -> None:
    hub = _install(monkeypatch, _Hub(cached=tiny_smolvlm))
    assert check_qa_model(f"hf:{NAME}") == f"hf:{tiny_smolvlm}"
    assert [c["local_files_only"] for c in hub.calls] == [True]
    harness = MockNode(VideoQANode, params={"model": f"hf:{NAME}", "max_new_tokens": 3})
    out = harness.run(inputs=[("frames", fake_frame(0)), ("queries", Query("q", 0, 0, "what?"))])
    answers = [m for _, m in out if isinstance(m, Answer)]
    assert answers[-1].done and not answers[-1].error


def test_not_cached_and_reachable_downloads(tiny_smolvlm: Path, monkeypatch: pytest.MonkeyPatch,
                                            no_offline: None, capsys: pytest.CaptureFixture[str]) -> None:
    hub = _install(monkeypatch, _Hub(download=tiny_smolvlm))
    assert resolve_hf_path(NAME) == tiny_smolvlm
    assert [c.get("local_files_only", False) for c in hub.calls] == [True, False]
    assert f"downloading {NAME}" in capsys.readouterr().err


@pytest.mark.parametrize("error, expected", [
    (LocalEntryNotFoundError("connection failed and nothing cached"), "not reachable"),
    (OfflineModeIsEnabled("offline"), "not reachable"),
    (ConnectionError("Name or service not known"), "download from the Hugging Face hub failed"),
    (_not_found(), "no such model"),
])
def test_unreachable_or_missing_is_one_line_with_the_way_out(error: BaseException, expected: str,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              no_offline: None) -> None:
    _install(monkeypatch, _Hub(download=error))
    with pytest.raises(ModelError, match=expected) as raised:
        check_qa_model(f"hf:{NAME}")
    said = str(raised.value)
    assert "\n" not in said and "hf:" in said
    if expected != "no such model":
        assert f"huggingface-cli download {NAME} --local-dir DIR" in said


def test_hf_hub_offline_never_tries_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = _install(monkeypatch, _Hub())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE is set.*pass hf:DIR"):
        resolve_hf_path(NAME)
    assert [c["local_files_only"] for c in hub.calls] == [True]


def test_ask_and_the_node_say_it_in_one_line(monkeypatch: pytest.MonkeyPatch, no_offline: None,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _install(monkeypatch, _Hub(download=OfflineModeIsEnabled("offline")))
    code = main(["ask", "what?", "--source", "synthetic", "--model", f"hf:{NAME}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len([line for line in err if "not reachable" in line]) == 1
    assert "downloading" in err[0] and len(err) == 2, err  # the attempt, then the one line
    with pytest.raises(ModelError, match="not reachable"):
        MockNode(VideoQANode, params={"model": f"hf:{NAME}"}).setup()
