"""``hf:ORG/NAME``: a Hugging Face hub name resolved to a local checkpoint folder, or one line saying why not.

``hf:PATH`` stays a local folder whenever PATH exists, so a folder that happens to be
called ``models/SmolVLM`` is never looked up on the hub. Otherwise a name of the form
ORG/NAME is read from the hub's cache first (``local_files_only``: no network), then
downloaded through ``huggingface_hub.snapshot_download`` (its progress bars on stderr)
when the hub is reachable and ``HF_HUB_OFFLINE`` is not set. Offline, unreachable or
not on the hub: a ``ModelError`` of one line that says what happened and how to pass a
local folder instead. huggingface_hub is imported only here, only for a hub name.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from agentrt.errors import ModelError, first_line

__all__ = ["is_hub_name", "resolve_hf_path", "local_folder_hint"]

# ORG/NAME as the hub spells repository ids: letters, digits, '-', '_', '.'; exactly one slash
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_TRUE = {"1", "true", "yes", "on"}


def is_hub_name(path: str) -> bool:
    """``ORG/NAME`` that is not a local path (a folder of that name wins)."""
    return bool(_HUB_NAME.match(path)) and not Path(path).expanduser().exists()


def local_folder_hint(name: str) -> str:
    return (f"download it where a hub is reachable (huggingface-cli download {name} --local-dir DIR) "
            "and pass hf:DIR")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def _network_errors() -> tuple[type[BaseException], ...]:
    """What a failed connection raises: OSError (requests, urllib3), httpx's own (huggingface_hub 1.x+)."""
    errors: list[type[BaseException]] = [OSError]
    try:
        import httpx
        errors.append(httpx.HTTPError)
    except ImportError:
        pass
    return tuple(errors)


def resolve_hf_path(path: str) -> Path:
    """The folder ``hf:PATH`` names: PATH itself when it is local (or not a hub name), else the hub cache's
    snapshot of ORG/NAME (downloaded when missing and a hub is reachable). One-line ModelError otherwise."""
    if not is_hub_name(path):
        return Path(path).expanduser()
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            LocalEntryNotFoundError,
            OfflineModeIsEnabled,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError:
        raise ModelError(f"hf:{path} is a hub name but huggingface_hub is not installed; "
                         f"pip install huggingface_hub, or {local_folder_hint(path)}") from None
    try:  # a cache hit costs no network at all
        return Path(snapshot_download(path, local_files_only=True))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, FileNotFoundError):
        pass
    if _offline():
        raise ModelError(f"hf:{path} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
                         f"{local_folder_hint(path)}")
    print(f"downloading {path} from the Hugging Face hub into its cache...", file=sys.stderr, flush=True)
    try:
        return Path(snapshot_download(path))  # huggingface_hub draws its own progress bars
    except GatedRepoError:
        raise ModelError(f"hf:{path} is gated on the hub (accept its licence and log in with "
                         f"`huggingface-cli login`), or {local_folder_hint(path)}") from None
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise ModelError(f"hf:{path}: no such model on the Hugging Face hub and no local folder of that name; "
                         "check the name, or pass hf:DIR with a local checkpoint folder") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise ModelError(f"hf:{path}: the Hugging Face hub is not reachable from here (offline); "
                         f"{local_folder_hint(path)}") from None
    except _network_errors() as exc:
        raise ModelError(f"hf:{path}: the download from the Hugging Face hub failed ({first_line(exc, 160)}); "
                         f"{local_folder_hint(path)}") from None
