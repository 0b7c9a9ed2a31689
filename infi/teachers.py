"""Teachers: anything that gives class probabilities [N, C] for an ImageSet, with class names.

Adapters: a predictions file (CSV, Parquet or NPY; logits or probabilities), a TorchScript file
(code, so it carries a warning), a transformers image-classification checkpoint, CLIP zero-shot
over class names with a prompt-template ensemble, and the bundled demo teacher. Uploaded files are
never unpickled: NPY loads with ``allow_pickle=False``, Parquet and CSV are data.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import torch

from infi.data import ImageSet
from infi.errors import MissingFileError, ModelLoadError, TeacherError
from infi.hub import failure_detail, is_local, load_pretrained
from infi.limits import Budget

Progress = Callable[[int, int], None]
TORCHSCRIPT_WARNING = ("A TorchScript file is a program: loading it runs its code with your "
                       "permissions. Only load TorchScript files from sources you trust.")
ZERO_SHOT_TEMPLATES: tuple[str, ...] = ("a photo of a {}", "a picture of a {}", "an image of a {}",
                                        "a {}", "a close-up photo of a {}")
PROBABILITY_TOLERANCE = 1e-3


class Teacher(Protocol):
    """The one interface: probabilities for an ImageSet, in the order of ``class_names``."""

    name: str
    class_names: tuple[str, ...]

    def predict_proba(self, images: ImageSet, progress: Progress | None = None) -> np.ndarray: ...


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def check_probabilities(P: np.ndarray, n: int, n_classes: int, what: str = "teacher") -> np.ndarray:
    """Validate a probability matrix: shape, finiteness, rows summing to 1."""
    P = np.asarray(P, dtype=np.float64)
    if P.shape != (n, n_classes):
        raise TeacherError(f"{what}: expected probabilities of shape ({n}, {n_classes}), got {P.shape}")
    if not np.isfinite(P).all():
        raise TeacherError(f"{what}: probabilities contain NaN or inf")
    if (P < 0).any() or not np.allclose(P.sum(axis=1), 1, atol=PROBABILITY_TOLERANCE):
        raise TeacherError(f"{what}: probabilities must be non-negative and sum to 1 per image")
    return P.astype(np.float32)


# --- predictions file -------------------------------------------------------------------------


@dataclass
class PredictionsTeacher:
    """Precomputed outputs. CSV/Parquet: an id column ('id' or 'image') and one numeric column per
    class (named by class). NPY: [N, C] in the ImageSet's order, class names given separately.
    ``kind`` is 'probabilities', 'logits' or 'auto' (logits when any value is outside [0, 1])."""

    table: pd.DataFrame | None
    matrix: np.ndarray | None
    class_names: tuple[str, ...]
    kind: str = "auto"
    name: str = "predictions file"
    runs_on_any_images: bool = False  # outputs exist for the dataset's images only
    notes: list[str] = field(default_factory=list)  # what was decided on the person's behalf

    def predict_proba(self, images: ImageSet, progress: Progress | None = None) -> np.ndarray:
        if self.matrix is not None:
            values = self.matrix
            if len(values) != len(images):
                raise TeacherError(f"{self.name}: {len(values)} rows for {len(images)} images; an NPY "
                                 "file must have one row per image, in the dataset's order")
        else:
            keys = match_ids(images.ids, self.table.index.astype(str), self.name)
            extra = len(self.table) - len(images)
            self.notes = [f"{self.name} has {extra} row(s) for images that are not in the dataset; they "
                          "were ignored"] if extra else []
            if keys is not images.ids:
                self.notes.append(f"{self.name} names images by file name only; each matched exactly one image")
            values = self.table.loc[keys].to_numpy(dtype=np.float64)
        if values.shape[1] != len(self.class_names):
            raise TeacherError(f"{self.name}: {values.shape[1]} columns for {len(self.class_names)} classes")
        if not np.isfinite(values).all():
            bad = np.argwhere(~np.isfinite(values))[0]
            raise TeacherError(f"{self.name}: NaN or inf for image {images.ids[bad[0]]!r}, "
                             f"class {self.class_names[bad[1]]!r}")
        kind = self.kind
        if kind == "auto":
            kind = "probabilities" if ((values >= 0) & (values <= 1)).all() else "logits"
            if kind == "logits":
                self.notes += [f"{self.name} holds values outside [0, 1] (from {values.min():.3g} to "
                              f"{values.max():.3g}), so they were read as logits and turned into "
                              "probabilities with softmax; choose 'probabilities' to have such values "
                              "refused instead"]
        if kind == "logits":
            P = softmax(values)
        else:
            sums = values.sum(axis=1)
            off = np.flatnonzero(np.abs(sums - 1) > PROBABILITY_TOLERANCE)
            if len(off):
                raise TeacherError(f"{self.name}: probabilities of {len(off)} image(s) do not sum to 1 "
                                 f"(e.g. {images.ids[off[0]]!r} sums to {sums[off[0]]:.3f}); pass "
                                 "kind='logits' if these are scores")
            P = values
        if progress:
            progress(len(images), len(images))
        return check_probabilities(P, len(images), len(self.class_names), self.name)


ID_FORMAT = ("Each row's id is the image's id as the Data page lists it: the path inside the ZIP or "
             "folder without a shared top folder (e.g. 'cat/001.png'), the uploaded file name, or for "
             "Shapes World its generated id. A bare file name ('001.png') works when no two images "
             "share it. Example row: id,cat,dog → cat/001.png,0.92,0.08")


def match_ids(image_ids: list[str], row_ids: pd.Index, name: str) -> list[str]:
    """The row id of each image: the image's own id, or else its file name when every image's
    file name is unique and present. Rows for other images are allowed (the caller says how many);
    an image without a row is an error naming a few and the format."""
    rows = set(row_ids)
    if all(i in rows for i in image_ids):
        return image_ids
    bare = [i.rsplit("/", 1)[-1] for i in image_ids]
    if len(set(bare)) == len(bare) and all(b in rows for b in bare):
        return bare
    missing = [i for i in image_ids if i not in rows]
    raise TeacherError(f"{name}: no prediction for {len(missing)} image(s), e.g. {missing[:5]}. {ID_FORMAT}")


def load_predictions(data: bytes | str | Path, filename: str, class_names: Sequence[str] | None = None,
                     kind: str = "auto", expected_classes: int | Sequence[str] | None = None,
                     budget: Budget | None = None) -> PredictionsTeacher:
    """Parse a predictions file by its extension (.csv, .parquet, .npy): ``data`` is a path, the
    file's bytes, or CSV text. Sizes are checked against the budget from the file's header or
    metadata before anything is parsed."""
    budget = budget or Budget.current()
    if kind not in ("auto", "probabilities", "logits"):
        raise TeacherError(f"kind: choose 'auto', 'probabilities' or 'logits', got {kind!r}")
    if isinstance(data, Path) and not data.is_file():
        raise MissingFileError(f"{filename}: no file at {data}")
    if isinstance(data, (str, Path)) and Path(str(data)).is_file():
        budget.check("max_prediction_bytes", Path(data).stat().st_size, f"{filename}: its size")
        raw = Path(data).read_bytes()
    else:
        raw = data.encode() if isinstance(data, str) else data
    budget.check("max_prediction_bytes", len(raw), f"{filename}: its size")
    suffix = Path(filename).suffix.lower()
    if suffix == ".npy":
        matrix = _read_npy(raw, filename, budget)
        names = tuple(class_names) if class_names else tuple(f"class_{i}" for i in range(matrix.shape[1]))
        if len(names) != matrix.shape[1]:
            raise TeacherError(f"{filename}: {matrix.shape[1]} columns but {len(names)} class names")
        teacher = PredictionsTeacher(None, matrix.astype(np.float64), names, kind, filename)
    elif suffix in (".csv", ".parquet"):
        table = _read_csv(raw, filename, budget) if suffix == ".csv" else _read_parquet(raw, filename, budget)
        teacher = PredictionsTeacher(_id_indexed(table, filename, class_names), None, (), kind, filename)
        teacher.class_names = tuple(str(c) for c in teacher.table.columns)
    else:
        raise TeacherError(f"{filename}: predictions must be .csv, .parquet or .npy")
    expected = expected_classes if isinstance(expected_classes, int) or expected_classes is None \
        else tuple(expected_classes)
    count = expected if isinstance(expected, int) or expected is None else len(expected)
    if count is not None and len(teacher.class_names) != count:
        detail = ""
        if not isinstance(expected, int) and teacher.table is not None:  # name the columns that differ
            missing = [c for c in expected if c not in teacher.class_names]
            extra = [c for c in teacher.class_names if c not in expected]
            detail = "".join(f"; {what}: {names[:5]}" for what, names in
                             (("missing", missing), ("not a class of the dataset", extra)) if names)
        raise TeacherError(f"{filename}: {len(teacher.class_names)} classes, but the dataset has {count}{detail}")
    return teacher


def _read_npy(raw: bytes, filename: str, budget: Budget) -> np.ndarray:
    """An NPY array, its header checked first: numeric, two-dimensional, within the budget, and no
    larger than the bytes that follow it (a 200-byte file once claimed a terabyte)."""
    fh = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(fh)
        shape, fortran, dtype = (np.lib.format.read_array_header_1_0(fh) if version == (1, 0)
                                 else np.lib.format.read_array_header_2_0(fh))
    except (ValueError, OSError, EOFError, SyntaxError) as err:
        raise TeacherError(f"{filename}: not a plain numeric NPY array ({err})") from err
    if dtype.hasobject or dtype.kind not in "fiu":
        raise TeacherError(f"{filename}: expected numbers, got {dtype} (object arrays are pickles and "
                           "are never loaded)")
    if len(shape) != 2:
        raise TeacherError(f"{filename}: expected a [N, C] array, got shape {shape}")
    budget.check("max_prediction_rows", shape[0], f"{filename}: rows")
    budget.check("max_prediction_columns", shape[1], f"{filename}: columns")
    if shape[0] * shape[1] * dtype.itemsize > len(raw) - fh.tell():
        raise TeacherError(f"{filename}: the header claims {shape} {dtype} values, more than the file holds")
    try:
        return np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise TeacherError(f"{filename}: not a plain numeric NPY array ({err})") from err


def _text(raw: bytes, filename: str) -> str:
    """CSV bytes as text: UTF-8 (with or without BOM) or UTF-16 with its BOM."""
    try:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            return raw.decode("utf-16")
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise TeacherError(f"{filename}: not UTF-8 or UTF-16 text ({err.reason})") from err


def _read_csv(raw: bytes, filename: str, budget: Budget) -> pd.DataFrame:
    """A CSV whose header line and row count are checked before pandas parses it; the separator
    (comma, semicolon or tab) is read from the header line."""
    text = _text(raw, filename)
    header = text[:budget.max_prediction_columns * 64].partition("\n")[0]
    sep = max((",", ";", "\t"), key=header.count)
    budget.check("max_prediction_columns", header.count(sep) + 1, f"{filename}: columns")
    budget.check("max_prediction_rows", text.count("\n"), f"{filename}: rows")
    try:
        return pd.read_csv(io.StringIO(text), sep=sep)
    except Exception as err:  # noqa: BLE001 - pandas raises many types for malformed files
        raise TeacherError(f"{filename}: could not be read as CSV ({type(err).__name__}: {err})") from err


def _read_parquet(raw: bytes, filename: str, budget: Budget) -> pd.DataFrame:
    """A Parquet file whose row and column counts (from its metadata) are checked first."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(io.BytesIO(raw)).metadata
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for malformed files
        raise TeacherError(f"{filename}: could not be read as Parquet ({type(err).__name__}: {err})") from err
    budget.check("max_prediction_rows", meta.num_rows, f"{filename}: rows")
    budget.check("max_prediction_columns", meta.num_columns, f"{filename}: columns")
    try:
        return pd.read_parquet(io.BytesIO(raw))
    except Exception as err:  # noqa: BLE001
        raise TeacherError(f"{filename}: could not be read as Parquet ({type(err).__name__}: {err})") from err


def _id_indexed(table: pd.DataFrame, filename: str, class_names: Sequence[str] | None) -> pd.DataFrame:
    """The table indexed by its id column, every other column a number (one per class)."""
    id_col = next((c for c in table.columns if str(c).strip().lower() in ("id", "image")), None)
    if id_col is None:
        raise TeacherError(f"{filename}: needs an 'id' (or 'image') column; found {list(table.columns)[:10]}")
    if table[id_col].duplicated().any():
        dup = table[id_col][table[id_col].duplicated()].astype(str).tolist()[:5]
        raise TeacherError(f"{filename}: ids listed more than once: {dup}")
    table = table.set_index(table[id_col].astype(str)).drop(columns=[id_col])
    non_numeric = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if non_numeric:
        raise TeacherError(f"{filename}: class columns must be numbers; not numeric: {non_numeric[:5]}")
    if table.shape[1] == 0:
        raise TeacherError(f"{filename}: no class columns beside the id column")
    names = tuple(str(c) for c in table.columns)
    if class_names is not None and tuple(class_names) != names:
        raise TeacherError(f"{filename}: class columns {list(names)} differ from the classes "
                           f"{list(class_names)}")
    return table


# --- models -----------------------------------------------------------------------------------


def batched_predict(images: ImageSet, batch_size: int, fn, progress: Progress | None) -> np.ndarray:
    """``fn(range)`` over consecutive batches of ``images``, concatenated, with progress."""
    out = []
    n = len(images)
    for start in range(0, n, batch_size):
        out.append(fn(range(start, min(start + batch_size, n))))
        if progress:
            progress(min(start + batch_size, n), n)
    return np.concatenate(out)


PICKLE_HINT = ("Infi never unpickles uploaded files; export the model with torch.jit.script or "
               "torch.jit.trace and torch.jit.save instead")


def torchscript_problem(path: str | Path) -> str | None:
    """Why a file is not a TorchScript archive, read from its ZIP directory alone (nothing is
    loaded): torch.save files (pickles) are named as such. None when it looks like TorchScript."""
    if not Path(path).is_file():
        raise MissingFileError(f"{Path(path).name}: no file at {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        with open(path, "rb") as fh:
            pickled = fh.read(1) == b"\x80"
        return (f"a pickled file (torch.save, legacy format); {PICKLE_HINT}" if pickled else
                "not a TorchScript model (TorchScript files are ZIP archives written by torch.jit.save)")
    if not any("/code/" in n or n.startswith("code/") for n in names):
        pickled = any(n.endswith("data.pkl") for n in names)
        return (f"a torch.save checkpoint (a pickle), not TorchScript; {PICKLE_HINT}" if pickled else
                "not a TorchScript model (a ZIP without TorchScript code)")
    return None


@dataclass
class TorchScriptTeacher:
    """A TorchScript image classifier: RGB float input [B,3,S,S] in [0,1], normalized with
    ``mean``/``std``; outputs logits [B, C]."""

    path: str
    class_names: tuple[str, ...]
    image_size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    name: str = "TorchScript teacher"
    warning: str = TORCHSCRIPT_WARNING

    def __post_init__(self) -> None:
        problem = torchscript_problem(self.path)
        if problem:
            raise TeacherError(f"{Path(self.path).name}: {problem}")
        try:
            self._module = torch.jit.load(self.path, map_location="cpu")
        except Exception as err:  # torch raises RuntimeError and others for non-TorchScript files
            raise TeacherError(f"{Path(self.path).name}: not a TorchScript model ({err})") from err
        self._module.eval()

    def predict_proba(self, images: ImageSet, progress: Progress | None = None) -> np.ndarray:
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        arrays = images.as_arrays(self.image_size)

        def run(idx):
            x = torch.from_numpy(arrays[idx.start:idx.stop]).permute(0, 3, 1, 2).float() / 255
            try:
                with torch.inference_mode():
                    logits = self._module((x - mean) / std)
            except Exception as err:  # the model's own code failed on our input
                raise TeacherError(f"{self.name}: the model failed on a batch of {len(x)} images of "
                                   f"{self.image_size}x{self.image_size} ({type(err).__name__}: "
                                   f"{str(err).strip().splitlines()[-1][:200]}); check the input "
                                   "size") from err
            logits = np.asarray(logits.float().numpy(), np.float64)
            if logits.ndim != 2 or logits.shape[1] != len(self.class_names):
                raise TeacherError(f"{self.name}: the model returned shape {logits.shape}, expected "
                                 f"[batch, {len(self.class_names)}]")
            return softmax(logits)

        return check_probabilities(batched_predict(images, 64, run, progress), len(images),
                                   len(self.class_names), self.name)


@dataclass
class HFClassifierTeacher:
    """A transformers image-classification checkpoint (hub id or local folder)."""

    model_id: str
    name: str = "transformers classifier"
    class_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        advice = "Offline, give a local folder saved with save_pretrained, or use a predictions file."
        self._model = load_pretrained(AutoModelForImageClassification, self.model_id, "the classifier", advice)
        try:
            local = is_local(self.model_id)
            self._processor = AutoImageProcessor.from_pretrained(self.model_id, local_files_only=local)
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"Could not load the classifier {self.model_id!r}: {failure_detail(err)}. "
                                 f"{advice}") from err
        self._model.eval()
        id2label = self._model.config.id2label
        self.class_names = tuple(str(id2label[i]) for i in range(len(id2label)))

    def predict_proba(self, images: ImageSet, progress: Progress | None = None) -> np.ndarray:
        def run(idx):
            batch = self._processor(images=images.images(idx), return_tensors="pt")
            with torch.inference_mode():
                logits = self._model(**batch).logits
            return torch.softmax(logits.float(), dim=1).numpy()

        return check_probabilities(batched_predict(images, 32, run, progress), len(images),
                                   len(self.class_names), self.name)


@dataclass
class ClipZeroShotTeacher:
    """CLIP zero-shot over class names with a confidence-weighted prompt-template ensemble.

    Per template ``j``: ``l_j = s * cos(v, T_j)``; the teacher's logits average the ``l_j`` with
    weights proportional to each template's mean max-softmax over the images (its confidence).
    """

    encoder: object
    class_names: tuple[str, ...]
    templates: tuple[str, ...] = ZERO_SHOT_TEMPLATES
    logit_scale: float | None = None
    name: str = "CLIP zero-shot"

    def __post_init__(self) -> None:
        if len(self.class_names) < 2:
            raise TeacherError("class_names: zero-shot needs at least two class names")
        for t in self.templates:
            if t.count("{}") != 1:
                raise TeacherError(f"templates: {t!r} must contain exactly one '{{}}' placeholder")

    def template_logits(self, image_embeddings: np.ndarray) -> np.ndarray:
        """Logits per template [J, N, C] for unit image embeddings [N, D]."""
        scale = self.logit_scale or float(self.encoder.model.logit_scale.detach().exp().clamp(max=100))
        texts = [t.format(c) for t in self.templates for c in self.class_names]
        T = self.encoder.embed_texts(texts).reshape(len(self.templates), len(self.class_names), -1)
        return scale * np.einsum("nd,jcd->jnc", image_embeddings, T)

    def ensemble(self, per_template: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits [N, C], template weights [J]) by mean max-softmax confidence."""
        conf = np.array([softmax(logits).max(axis=1).mean() for logits in per_template])
        weights = conf / conf.sum()
        return np.einsum("j,jnc->nc", weights, per_template), weights

    def predict_proba(self, images: ImageSet, progress: Progress | None = None) -> np.ndarray:
        emb = self.encoder.embed_images(images.lazy(), patches=False, progress=progress)  # a batch at a time
        logits, _ = self.ensemble(self.template_logits(emb.global_))
        return check_probabilities(softmax(logits.astype(np.float64)), len(images),
                                   len(self.class_names), self.name)


@dataclass
class OnnxTeacher:
    """An ONNX image classifier run with onnxruntime on the CPU: data, not code (no custom ops are
    loaded). Layout (NCHW or NHWC) and input size are read from the model when it states them;
    input is float RGB in [0, 1], normalized with ImageNet's mean and std unless ``normalize`` is
    False (Infi's own exports normalize inside the model); outputs are logits [B, C]."""

    data: bytes
    class_names: tuple[str, ...]
    image_size: int = 224
    normalize: bool = True
    name: str = "ONNX teacher"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        import onnxruntime as ort

        try:
            self._session = ort.InferenceSession(self.data, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types for bad files
            raise TeacherError(f"{self.name}: not an ONNX model onnxruntime can run ({type(err).__name__}: "
                               f"{str(err).strip().splitlines()[0][:200]})") from err
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise TeacherError(f"{self.name}: expected one image input [batch, 3, H, W] or [batch, H, W, 3]; "
                               f"the model has {[(i.name, i.shape) for i in inputs]}")
        shape = inputs[0].shape
        self._input = inputs[0].name
        self._nhwc = shape[3] == 3 and shape[1] != 3
        sides = [d for d in (shape[1:3] if self._nhwc else shape[2:4]) if isinstance(d, int)]
        if sides:
            self.image_size = int(sides[0])  # the model states its size: that one is used

    def predict_proba(self, images: ImageSet, progress: Progress | None = None) -> np.ndarray:
        arrays = images.as_arrays(self.image_size)
        mean = np.asarray(self.mean, np.float32) if self.normalize else np.zeros(3, np.float32)
        std = np.asarray(self.std, np.float32) if self.normalize else np.ones(3, np.float32)

        def run(idx):
            x = (arrays[idx.start:idx.stop].astype(np.float32) / 255 - mean) / std
            x = np.ascontiguousarray(x if self._nhwc else x.transpose(0, 3, 1, 2))
            try:
                logits = np.asarray(self._session.run(None, {self._input: x})[0], np.float64)
            except Exception as err:  # noqa: BLE001 - the model failed on our input
                raise TeacherError(f"{self.name}: the model failed on a batch of {len(x)} images of "
                                   f"{self.image_size}x{self.image_size} ({type(err).__name__}); check the "
                                   "input size") from err
            if logits.ndim != 2 or logits.shape[1] != len(self.class_names):
                raise TeacherError(f"{self.name}: the model returned shape {logits.shape}, expected "
                                   f"[batch, {len(self.class_names)}] (one output per class)")
            if not np.isfinite(logits).all():
                raise TeacherError(f"{self.name}: the model returned NaN or inf")
            return softmax(logits)

        return check_probabilities(batched_predict(images, 32, run, progress), len(images),
                                   len(self.class_names), self.name)


# --- one way to name a teacher ------------------------------------------------------------------

SPEC_KINDS = ("predictions", "onnx", "torchscript", "hf", "zeroshot")
SPEC_HELP = ("a registered teacher (demo) | predictions:FILE | onnx:FILE | torchscript:FILE (legacy) | "
             "hf:MODEL_ID | zeroshot[:ENCODER]")


PT2_REFUSED = ("teacher: a torch.export program (.pt2) is not accepted as a teacher: torch.export.load falls "
               "back to full unpickling for some of its parts, so a hostile file could run code. Export the "
               "model as ONNX (torch.onnx.export(model, example, dynamo=True)) and give onnx:FILE.")


def _read_model_file(path: Path) -> bytes:
    if not path.is_file():
        raise MissingFileError(f"{path.name}: no file at {path}")
    Budget.current().check("max_file_bytes", path.stat().st_size, f"{path.name}: its size")
    return path.read_bytes()


def parse_class_names(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """Class names from 'a, b, c' (or a list): whitespace trimmed, blanks dropped, duplicates an
    error. The app and the CLI read class names only through here."""
    if text is None:
        return ()
    raw = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(" ".join(str(n).split()) for n in raw)
    names = tuple(n for n in names if n)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise TeacherError(f"class names: {dupes} listed more than once")
    return names


def from_spec(spec: str, dataset_classes: Sequence[str] | None = None, *,
              class_names: Sequence[str] | None = None, data: bytes | None = None,
              filename: str | None = None, kind: str = "auto", image_size: int = 224,
              templates: Sequence[str] = ZERO_SHOT_TEMPLATES,
              encoder_loader: Callable[[str], object] | None = None,
              default_encoder: str = "demo", normalize: bool = True) -> Teacher:
    """The teacher a reference names, built the same way for the app and the CLI.

    ``spec`` is a registered name (``demo``), ``predictions:FILE``, ``torchscript:FILE``,
    ``hf:MODEL_ID`` or ``zeroshot[:ENCODER]``. ``data`` (with ``filename``) stands in for the file of
    an upload. Class names default to the dataset's (``dataset_classes``): a predictions ``.npy``
    and a TorchScript model carry none, and zero-shot prompts are built from them.
    """
    from infi import registry
    from infi.encoders import shared_encoder

    head, _, value = spec.partition(":")
    head = head.strip()
    names = parse_class_names(class_names) or tuple(dataset_classes or ())
    if head in ("pt2", "export") or spec.strip().lower().endswith(".pt2"):
        raise TeacherError(PT2_REFUSED)
    if head not in SPEC_KINDS:
        if value:
            raise TeacherError(f"teacher: unknown kind {head!r}; give {SPEC_HELP}")
        return registry.TEACHERS.get(head)()
    if head in ("predictions", "onnx", "torchscript") and not value and data is None:
        raise TeacherError(f"teacher: {head} needs a file, as {head}:FILE")
    if head == "predictions":
        name = filename or Path(value).name
        source = data if data is not None else Path(value)
        is_npy = name.lower().endswith(".npy")
        return load_predictions(source, name, class_names=names or None if is_npy else None,
                                kind=kind, expected_classes=tuple(dataset_classes) if dataset_classes else None)
    if head == "onnx":
        if not names:
            raise TeacherError("teacher: an ONNX model needs class names; give them, or use a dataset with "
                               "class folders or labels")
        raw = data if data is not None else _read_model_file(Path(value))
        return OnnxTeacher(raw, names, image_size=image_size, normalize=normalize,
                           name=filename or Path(value).name or "ONNX teacher")
    if head == "torchscript":
        if not names:
            raise TeacherError("teacher: a TorchScript model needs class names; give them, or use a "
                               "dataset with class folders or labels")
        if data is None:
            return TorchScriptTeacher(value, names, image_size=image_size)
        with tempfile.TemporaryDirectory() as tmp:  # under the upload's own name, for messages
            path = Path(tmp) / (Path(filename or "model.pt").name or "model.pt")
            path.write_bytes(data)
            return TorchScriptTeacher(str(path), names, image_size=image_size)
    if head == "hf":
        if not value:
            raise TeacherError("teacher: hf needs a model id or folder, as hf:MODEL_ID")
        return HFClassifierTeacher(value.strip())
    load = encoder_loader or shared_encoder
    return ClipZeroShotTeacher(load(value.strip() or default_encoder), names, tuple(templates))
