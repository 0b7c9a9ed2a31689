"""Save and load a whole session as one ``.infi`` file, and export a student.

A bundle is a ZIP of exactly three members: ``manifest.json`` (dataset reference and hash,
encoder id, corpus, settings), ``arrays.safetensors`` (concept scores, teacher probabilities,
labels, student state, bounds, splits) and ``provenance.json``. Loading checks the member list,
sizes and every field, so a bundle is data only: nothing in it is executed or unpickled.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors
from safetensors.numpy import save_file

from infi import registry
from infi.concepts import ConceptMatrix
from infi.corpus import Corpus
from infi.data import ZIP_READ_ERRORS, ImageSet, read_zip_member
from infi.dense import DENSE_METHODS
from infi.errors import BundleError, InputError, LimitError, SessionError
from infi.limits import Budget, hint
from infi.session import EvalSet, Session
from infi.student import ConceptStudent, student_from_arrays, student_to_arrays
from infi.tuning import Provenance

FORMAT = "infi-session"
VERSION = 1
MEMBERS = {"manifest.json", "arrays.safetensors", "provenance.json"}
MAX_JSON_BYTES = 16 * 1024**2  # the manifest: ids, names and settings


def save_session(session: Session) -> bytes:
    """Serialise everything computed so far (images themselves are referenced, not copied)."""
    if session.concepts is None or session.P is None:
        raise SessionError("bundle: a session is saved once it has teacher outputs and concept scores")
    arrays: dict[str, np.ndarray] = {"X": session.concepts.X, "P": session.P.astype(np.float32)}
    if session.labels is not None:
        arrays["labels"] = np.asarray(session.labels, np.int64)
    manifest = {
        "format": FORMAT, "version": VERSION, "seed": session.seed,
        "dataset": ({"ids": list(session.dataset.ids), **session.dataset.describe()}
                    if session.dataset is not None else session.dataset_ref or {"ids": None}),
        "teacher": session.teacher_name, "class_names": list(session.class_names or ()),
        "encoder": session.encoder_id, "corpus": session.corpus.to_dict() if session.corpus else None,
        "mode": session.mode, "dense": session.dense, "resolution": session.resolution,
        "concepts": list(session.concepts.names),
        "eval_sets": {}, "student": None, "student_params": session.student_params,
    }
    for name, e in session.eval_sets.items():
        if e.concepts is not None and e.P is not None:
            arrays[f"eval/{name}/X"] = e.concepts.X
            arrays[f"eval/{name}/P"] = e.P.astype(np.float32)
            manifest["eval_sets"][name] = e.images.describe()
    if session.student is not None:
        s_arrays, meta = student_to_arrays(session.student)
        arrays |= {f"student/{k}": v for k, v in s_arrays.items()}
        arrays |= {"lower": session.lower, "upper": session.upper,
                   "train_idx": session.train_idx, "val_idx": session.val_idx}
        manifest["student"] = meta
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("arrays.safetensors", save_safetensors({k: np.ascontiguousarray(v) for k, v in arrays.items()}))
        zf.writestr("provenance.json", session.provenance.to_json())
    return buf.getvalue()


def _read_members(data: bytes, budget: Budget | None = None) -> dict[str, bytes]:
    """The three members, each read in blocks with a running count against the budget (a 16 MB
    bundle once inflated one member to 3.5 GB); the JSON members are small by nature."""
    budget = budget or Budget.current()
    budget.check("max_bundle_bytes", len(data), "bundle: its size")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise BundleError("bundle: not an Infi session file (not a ZIP container)") from None
    with zf:
        names = [i.filename for i in zf.infolist()]
        if sorted(names) != sorted(MEMBERS):
            raise BundleError(f"bundle: unexpected contents {sorted(names)[:10]}; an Infi session holds "
                              f"exactly {sorted(MEMBERS)}")
        budget.check("max_bundle_bytes", sum(i.file_size for i in zf.infolist()), "bundle: unpacked, it")
        left = budget.max_bundle_bytes
        out = {}
        for name in sorted(MEMBERS):
            limit = min(left, MAX_JSON_BYTES) if name.endswith(".json") and name != "provenance.json" else left
            out[name] = _read_capped(zf, name, limit)
            left -= len(out[name])
        return out


def _read_capped(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    try:
        return read_zip_member(zf, name, limit, f"bundle: {name} unpacks to more than {limit / 1024**2:,.0f} MB "
                                                f"({hint('max_bundle_bytes')})")
    except LimitError:
        raise
    except (*ZIP_READ_ERRORS, RuntimeError) as err:
        raise BundleError(f"bundle: {name} cannot be read ({type(err).__name__}: {err})") from err


def load_session(data: bytes, session: Session | None = None) -> Session:
    """Rebuild a session from bytes; a dataset that a registered plug-in can regenerate (Shapes
    World) is regenerated and hash-checked, others stay referenced by ids and content hash.

    ``session`` lends its cache to the loaded session (the app keeps its memory-only cache)."""
    members = _read_members(data)
    try:
        manifest = json.loads(members["manifest.json"])
        arrays = load_safetensors(members["arrays.safetensors"])
    except Exception as err:  # JSON, UTF-8 and safetensors each raise their own types
        raise BundleError(f"bundle: a member is corrupt ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError("bundle: not an Infi session file")
    if manifest.get("version") != VERSION:
        raise BundleError(f"bundle: version {manifest.get('version')} is not supported (expected {VERSION})")
    try:
        provenance = Provenance.from_json(members["provenance.json"].decode())
        return _rebuild(manifest, arrays, provenance, session)
    except LimitError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, UnicodeDecodeError, IndexError, OverflowError) as err:
        raise BundleError(f"bundle: inconsistent contents ({err})") from err


def _rebuild(manifest: dict, arrays: dict, provenance: Provenance, session: Session | None) -> Session:
    """The manifest and arrays read into the parts ``Session.from_saved`` puts together."""
    names, mode = tuple(manifest["concepts"]), manifest["mode"]
    _check_rows(manifest["dataset"], arrays["X"], "the dataset")
    dataset = _regenerate(manifest["dataset"])
    eval_sets = {}
    for name, desc in manifest.get("eval_sets", {}).items():
        _check_rows(desc, arrays[f"eval/{name}/X"], f"the evaluation set {name!r}")
        images = _regenerate(desc)
        if images is not None:
            eval_sets[name] = EvalSet(images, arrays[f"eval/{name}/P"], None,
                                      ConceptMatrix(arrays[f"eval/{name}/X"], names, mode))
    student = split = bounds = None
    if manifest["student"] is not None:
        s_arrays = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("student/")}
        student = student_from_arrays(s_arrays, manifest["student"])
        split = (arrays["train_idx"], arrays["val_idx"])
        bounds = (arrays["lower"], arrays["upper"])
    dense = manifest.get("dense", "vanilla")  # bundles before 0.3 made patches one way
    if dense not in DENSE_METHODS:
        raise BundleError(f"bundle: unknown dense method {str(dense)[:40]!r}")
    loaded = Session.from_saved(
        seed=int(manifest["seed"]), dataset=dataset, dataset_ref=dict(manifest["dataset"]),
        eval_sets=eval_sets, teacher_name=manifest["teacher"], class_names=manifest["class_names"],
        labels=arrays.get("labels"), P=arrays["P"], encoder_id=manifest["encoder"],
        corpus=Corpus.from_dict(manifest["corpus"]) if manifest["corpus"] else None,
        concepts=ConceptMatrix(arrays["X"], names, mode), student=student,
        student_params=manifest.get("student_params") or {}, split=split, bounds=bounds,
        provenance=provenance, cache=session.cache if session is not None else None)
    loaded.dense = dense
    resolution = manifest.get("resolution")
    if resolution is not None and (not isinstance(resolution, int) or not 16 <= resolution <= 1024):
        raise BundleError(f"bundle: resolution {str(resolution)[:20]!r} is not an image size")
    loaded.resolution = resolution
    _reopen_store(loaded)
    return loaded


def _reopen_store(session: Session) -> None:
    """A session made from an embedding store reopens it when the folder is still there with the
    same ids (the thumbnails and the embeddings come back); else it stays referenced. Never on a
    hosted deployment, where a bundle must not name folders of the server."""
    from infi.limits import hosted
    from infi.store import open_store, read_manifest

    ref = session.dataset_ref or {}
    source = ref.get("source") or {}
    if session.dataset is not None or hosted() or source.get("kind") != "embedding store":
        return
    try:
        if read_manifest(source.get("path", "")).get("ids_hash") != ref.get("content_hash"):
            return
        session.open_store(open_store(source["path"]))
    except (InputError, OSError, TypeError):
        return


def _check_rows(desc: dict, X: np.ndarray, what: str) -> None:
    """The image count a description claims must be the saved rows' before anything is
    regenerated (a bundle claiming 2,000 images for 60 rows once generated them all first)."""
    claims = {int(v) for v in (desc.get("n"), (desc.get("source") or {}).get("n")) if v is not None}
    if desc.get("ids") is not None:
        claims.add(len(desc["ids"]))
    if claims and claims != {X.shape[0]}:
        raise BundleError(f"bundle: {what} claims {sorted(claims)} images for {X.shape[0]} rows of scores")


def _regenerate(desc: dict) -> ImageSet | None:
    """A dataset whose source kind a plug-in registered is rebuilt from its description and
    must match the saved content hash; any other stays referenced only (None)."""
    source = desc.get("source") or {}
    if source.get("kind") not in registry.DATASETS:
        return None
    images = registry.DATASETS.get(source["kind"])(source)
    if images.content_hash != desc.get("content_hash"):
        raise BundleError(f"bundle: the regenerated {source['kind']} dataset does not match the "
                          "saved content hash")
    return images


def concept_frame(session: Session) -> pd.DataFrame:
    """The concept matrix X as a table: one row per image id (loaded or referenced), one column
    per concept; what the Parquet export writes."""
    frame = pd.DataFrame(session.concepts.X, columns=list(session.concepts.names), index=session.image_ids())
    frame.index.name = "id"
    return frame


def export_student(student: ConceptStudent, concepts: tuple[str, ...], class_names: tuple[str, ...],
                   folder: Path, metrics: dict | None = None) -> tuple[Path, Path]:
    """Write ``student.safetensors`` and ``student.json`` (a readable card) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "student.safetensors"
    card = folder / "student.json"
    save_file({"coef": student.coef_, "intercept": student.intercept_, "mean": student.mean_,
               "scale": student.scale_, "weights_mean": student.weights_.astype(np.float32)},
              str(weights))
    card.write_text(json.dumps(student_card(student, concepts, class_names, metrics), indent=2))
    return weights, card


def student_card(student: ConceptStudent, concepts: tuple[str, ...], class_names: tuple[str, ...],
                 metrics: dict | None = None, top: int = 10) -> dict:
    """A JSON card: concepts, classes, standardization, top weights per class, settings."""
    W = student.weights_
    per_class = {}
    for c, name in enumerate(class_names):
        order = np.argsort(-np.abs(W[:, c]))[:top]
        per_class[name] = [{"concept": concepts[j], "weight": round(float(W[j, c]), 5)}
                           for j in order if W[j, c] != 0]
    return {
        "model": "infi.ConceptStudent", "params": student.get_params(),
        "classes": list(class_names), "concepts": list(concepts),
        "standardization": {"mean": student.mean_.round(6).tolist(),
                            "scale": student.scale_.round(6).tolist()},
        "prediction": "mean over members of sigmoid(((x - mean) / scale) @ coef + intercept), "
                      "normalized over classes",
        "top_weights": per_class,
        "metrics": {k: v for k, v in (metrics or {}).items() if k != "per_class"},
    }
