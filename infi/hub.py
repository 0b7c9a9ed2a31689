"""Model references: a local folder or a Hugging Face hub id, told apart before transformers
sees them, so a mistyped folder is reported as a missing folder rather than a bad repo id."""

from __future__ import annotations

import json
import re
from pathlib import Path

from infi.errors import InfiError, MissingFileError, ModelLoadError

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


def load_pretrained(loader, reference: str, what: str, advice: str, model_types: tuple[str, ...] = ()):
    """``loader.from_pretrained`` for a person's model, refusing what would be unsafe or silently
    wrong: only safetensors weights (a pickled ``pytorch_model.bin`` is never loaded), and a
    checkpoint whose weights leave parameters missing or unused is an error, not a randomly
    initialised model. Every failure is a ``ModelLoadError`` naming ``what`` and ``advice``."""
    local = is_local(reference)
    if local:
        check_config(Path(reference).expanduser(), what, advice, model_types)
    try:
        model, info = loader.from_pretrained(reference, local_files_only=local, use_safetensors=True,
                                             output_loading_info=True)
    except InfiError:
        raise
    except Exception as err:  # noqa: BLE001 - OSError, ValueError, SafetensorError, HeaderTooLarge…
        detail = failure_detail(err)
        if local and any(Path(reference).expanduser().glob("*.bin")):
            detail += "; only safetensors weights are read (pickled .bin files are never loaded)"
        raise ModelLoadError(f"Could not load {what} {reference!r}: {type(err).__name__}: {detail}. {advice}") from err
    problems = {k: v for k in ("missing_keys", "unexpected_keys", "mismatched_keys") if (v := info.get(k))}
    if problems:
        listed = "; ".join(f"{len(v)} {k.replace('_', ' ')} (e.g. {sorted(map(str, v))[0]})"
                           for k, v in problems.items())
        raise ModelLoadError(f"Could not load {what} {reference!r}: its weights do not match the model ({listed}), "
                             f"so it would run with random weights. {advice}")
    return model


def check_config(folder: Path, what: str, advice: str, model_types: tuple[str, ...]) -> None:
    """A local checkpoint's config.json, read before transformers builds anything: missing, not
    JSON or of another model type, transformers would build a full-size default model first."""
    config = folder / "config.json"
    if not config.is_file():
        raise ModelLoadError(f"Could not load {what} {str(folder)!r}: the folder has no config.json. {advice}")
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (ValueError, UnicodeDecodeError, AttributeError) as err:
        raise ModelLoadError(f"Could not load {what} {str(folder)!r}: its config.json is not a JSON object "
                             f"({err}). {advice}") from err
    if model_types and model_type not in model_types:
        raise ModelLoadError(f"Could not load {what} {str(folder)!r}: its config.json describes a "
                             f"{model_type!r} model, not {' or '.join(model_types)}. {advice}")
