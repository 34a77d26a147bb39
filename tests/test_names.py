"""One name, one thing: no two public classes across the product packages share a name.

A second ``CameraConfig`` or ``Tick`` makes an import line ambiguous to a reader and a
``class:`` string in a launch file easy to get wrong; this walks every module's
``__all__`` (or its public top-level classes) and fails on any name defined twice."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agentrt", "streams", "policies", "sims")


def _public_classes() -> dict[str, list[str]]:
    """Class name -> the modules that define it (by source, so nothing is imported)."""
    seen: dict[str, list[str]] = defaultdict(list)
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in tree.body:
                if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                    seen[node.name].append(str(path.relative_to(ROOT)))
    return seen


def test_no_two_public_classes_share_a_name() -> None:
    dupes = {name: where for name, where in _public_classes().items() if len(where) > 1}
    assert not dupes, f"public class names defined more than once: {dupes}"


def _task_lists() -> list[str]:
    """Where product code spells two or more task names by hand (a literal tuple/list/set of
    them, or a string like "reach, push, pick_place") outside the one table, sims.tasks.TASKS."""
    from sims.tasks import TASKS

    names = set(TASKS)
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel.parts[:2] == ("sims", "tasks"):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            docstrings = {  # prose for readers, like docs/: examples may name tasks
                id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef) and n.body
                and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)
            }
            for node in ast.walk(tree):
                if id(node) in docstrings:
                    continue
                if isinstance(node, ast.Tuple | ast.List | ast.Set):
                    spelled = {e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in names}
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    words = node.value.replace(",", " ").replace(":", " ").split()
                    spelled = {w for w in words if w in names and w != "push"}  # "push" is also an English word
                    spelled |= {"push"} if spelled and "push" in words else set()
                else:
                    continue
                if len(spelled) >= 2:
                    found.append(f"{rel}:{node.lineno}")
    return found


def test_task_names_come_from_one_table() -> None:
    assert not _task_lists(), f"task names typed by hand (use sims.tasks.TASK_NAMES): {_task_lists()}"


def _string_sites(needle: str) -> list[str]:
    """Product code (not docstrings) whose string literals contain ``needle``."""
    sites = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            docstrings = {
                id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef) and n.body
                and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)
            }
            for node in ast.walk(tree):
                if (isinstance(node, ast.Constant) and isinstance(node.value, str) and needle in node.value
                        and id(node) not in docstrings):
                    sites.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return sites


@pytest.mark.parametrize("needle", ["nano_qa.safetensors", "nano:PATH, hf:PATH or hf:ORG/NAME"])
def test_qa_weights_path_and_model_specs_are_spelled_once(needle: str) -> None:
    """The shipped QA weights' file and the ``nano | nano:PATH | hf:PATH | hf:ORG/NAME`` grammar live in
    policies.qa.videoqa (torch-free, so the CLI and the node's cheap checks can import them)."""
    sites = _string_sites(needle)
    assert len(sites) == 1 and sites[0].startswith("policies/qa/videoqa.py"), sites


def test_model_spec_parser_is_the_one_the_node_config_and_loader_use() -> None:
    from agentrt.errors import ConfigError
    from policies.qa.node import VideoQANodeConfig, check_qa_model
    from policies.qa.videoqa import BACKENDS, load_videoqa, split_model_spec

    assert split_model_spec("nano") == ("nano", "")
    assert split_model_spec("hf:models/x") == ("hf", "models/x")
    assert set(BACKENDS) == {"nano", "hf"}
    messages = set()
    for call in (lambda: split_model_spec("gguf:x"), lambda: load_videoqa("gguf:x"),
                 lambda: check_qa_model("gguf:x"), lambda: VideoQANodeConfig(model="gguf:x")):
        with pytest.raises(ConfigError) as info:
            call()
        messages.add(str(info.value).split(": ", 1)[-1] if "VideoQANodeConfig" in str(info.value) else str(info.value))
    assert messages == {"unknown QA model 'gguf:x': expected nano, nano:PATH, hf:PATH or hf:ORG/NAME"}, messages


def test_decoders_and_answers_take_their_options_one_way() -> None:
    """``action_ids`` is a keyword of both decoders (not hidden in JacobiConfig for one of them), and
    ``max_new_tokens`` is keyword-only wherever an answer is generated."""
    import dataclasses
    import inspect

    from agentrt.engine.decoding import JacobiConfig, greedy_decode, jacobi_decode
    from agentrt.engine.streaming import StreamingKVCache
    from policies.qa.hf.vlm import HFVideoQA
    from policies.qa.hf.window import KVWindow
    from policies.qa.runtime import NanoVideoQA
    from policies.qa.videoqa import VideoQAModel

    for decode in (greedy_decode, jacobi_decode):
        assert inspect.signature(decode).parameters["action_ids"].kind is inspect.Parameter.KEYWORD_ONLY, decode
    assert "action_ids" not in {f.name for f in dataclasses.fields(JacobiConfig)}
    for method in (StreamingKVCache.ask, StreamingKVCache.answer, KVWindow.answer, VideoQAModel.answer,
                   NanoVideoQA.answer, HFVideoQA.answer, HFVideoQA.answer_tokens):
        kind = inspect.signature(method).parameters["max_new_tokens"].kind
        assert kind is inspect.Parameter.KEYWORD_ONLY, method.__qualname__


def _raise_wordings(words: tuple[str, ...]) -> list[str]:
    """Raise statements whose message reports the offending value as '<word> {value}'."""
    import re

    pattern = re.compile(rf"\b({'|'.join(words)})( shape)?:?\s*[\[(]?$")
    sites = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Raise):
                    continue
                for sub in ast.walk(node):
                    if isinstance(sub, ast.JoinedStr):
                        parts = sub.values
                        for part, after in zip(parts, [*parts[1:], None], strict=True):
                            if (isinstance(part, ast.Constant) and isinstance(after, ast.FormattedValue)
                                    and pattern.search(str(part.value))):
                                sites.append(f"{path.relative_to(ROOT)}:{sub.lineno}")
    return sites


def test_error_messages_say_got() -> None:
    """'expected X, got Y' everywhere: not 'given Y' here and 'received Y' there."""
    sites = _raise_wordings(("given", "received", "was", "found"))
    assert not sites, sites



def _product_modules() -> list[tuple[str, Path]]:
    """(dotted module name, path) of every module in the product packages, imported (cheap: backends load lazily)."""
    import importlib

    modules = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            importlib.import_module(name)
            modules.append((name, path))
    return modules


def _shipped_nodes() -> list[type]:
    """Every subclass of agentrt.node.Node defined in the product packages."""
    from agentrt.node import Node

    _product_modules()
    found, todo = [], list(Node.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] in PACKAGES:
            found.append(cls)
    return sorted(set(found), key=lambda c: f"{c.__module__}:{c.__name__}")


def test_every_node_py_holds_a_node() -> None:
    """A module named ``node.py`` defines a Node (a command or a helper that is not a node is named for what it is)."""
    import sys

    from agentrt.node import Node

    failing = []
    for name, path in _product_modules():
        if path.name != "node.py":
            continue
        rel = str(path.relative_to(ROOT))
        module = sys.modules[name]
        nodes = [v for v in vars(module).values()
                 if isinstance(v, type) and issubclass(v, Node) and v.__module__ == name]  # agentrt/node.py: Node itself
        if not nodes:
            failing.append(rel)
    assert not failing, f"node.py files that define no agentrt.node.Node subclass: {failing}"


def test_node_classes_and_configs_are_named_one_way() -> None:
    """A node class is named ``<Name>Node`` and its ``Config`` is ``<Name>NodeConfig``, defined beside it
    (a node that takes no params keeps the base's ``EmptyConfig``); docs/runtime.md states the rule."""
    from agentrt.node import EmptyConfig

    problems: dict[str, str] = {}
    for cls in _shipped_nodes():
        where = f"{cls.__module__}:{cls.__name__}"
        config = cls.Config
        if not cls.__name__.endswith("Node"):
            problems[where] = "the class name does not end in 'Node'"
        elif config is not EmptyConfig and config.__name__ != f"{cls.__name__}Config":
            problems[where] = f"Config is {config.__name__}, expected {cls.__name__}Config"
        elif config is not EmptyConfig and config.__module__ != cls.__module__:
            problems[where] = f"{config.__name__} is defined in {config.__module__}, not beside the node"
    assert not problems, f"node classes or configs off the naming rule: {problems}"
