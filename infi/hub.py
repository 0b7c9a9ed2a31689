"""Model references: a local folder or a Hugging Face hub id, told apart before transformers
sees them, so a mistyped folder is reported as a missing folder rather than a bad repo id."""

from __future__ import annotations

import re
from pathlib import Path

from infi.errors import MissingFileError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _hub_shaped(reference: str) -> bool:
    """Written like a hub id ("name" or "namespace/name"), not like a relative or home path."""
    return bool(HUB_ID.match(reference)) and not reference.startswith((".", "~"))


def is_hub_id(reference: str) -> bool:
    """Shaped like a hub id and not a path on this machine."""
    return _hub_shaped(reference) and not Path(reference).expanduser().exists()


def is_local(reference: str) -> bool:
    """True for an existing folder; False for a hub id ("name" or "namespace/name").

    Raises FileNotFoundError for anything else: a path that does not exist cannot be a hub id.
    """
    folder = Path(reference).expanduser()
    if folder.is_dir():
        return True
    if _hub_shaped(reference):
        return False
    raise MissingFileError(f"no folder {reference!r} on this machine (and it is not a hub id "
                            "of the form 'namespace/name')")


def failure_detail(err: Exception) -> str:
    """transformers' message without its closing period, to continue in a sentence."""
    return str(err).strip().rstrip(".")
