"""Session: the chain dataset → teacher → embeddings → concepts → student → provenance.

Setting a step clears everything that depends on it (and says what it cleared), so no stale
result survives an upstream change. The pages (through ``infi.ui.state``), the CLI and
``bundle.py`` all drive this one object, so the UI and the headless path cannot drift apart.
Optional evaluation sets (the Shapes World shifted split, say) go through the same teacher,
encoder and concepts, and every metric is reported on them too.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from infi import metrics
from infi.cache import ArrayCache, cache_key
from infi.concepts import ConceptMatrix, build_bank, concept_scores
from infi.config import DistillConfig, PRGConfig
from infi.corpus import Corpus
from infi.data import ImageSet, from_arrays
from infi.dense import DENSE_METHODS, default_method
from infi.encoders import DEFAULT_ENCODER, ImageEmbeddings, normalize_reference, shared_encoder
from infi.errors import InputError, SessionError
from infi.splits import holdout_split
from infi.student import ConceptStudent, effective_concepts
from infi.teachers import Teacher, check_probabilities
from infi.tuning import (
    Provenance,
    ProvenanceStep,
    TuningAction,
    apply_actions,
    compensation,
    empty_bounds,
    expand_groups,
)

Progress = Callable[[int, int], None]
@dataclass
class EvalSet:
    """An extra image set evaluated alongside the held-out split (e.g. 'shifted')."""

    images: ImageSet
    P: np.ndarray | None = None
    embeddings: ImageEmbeddings | None = None
    concepts: ConceptMatrix | None = None


@dataclass
class Session:
    """One user's pipeline state; every field is derived from the steps before it."""

    cache: ArrayCache = field(default_factory=ArrayCache)
    seed: int = 0
    dataset: ImageSet | None = None
    eval_sets: dict[str, EvalSet] = field(default_factory=dict)
    teacher_name: str | None = None
    class_names: tuple[str, ...] | None = None
    labels: np.ndarray | None = None
    P: np.ndarray | None = None
    encoder_id: str | None = None
    embeddings: ImageEmbeddings | None = None
    corpus: Corpus | None = None
    mode: str = "global"
    dense: str = "vanilla"  # the last-block method for patch embeddings (infi.dense)
    resolution: int | None = None  # region modes' input size; None = the checkpoint's own
    concepts: ConceptMatrix | None = None
    student: ConceptStudent | None = None
    student_params: dict = field(default_factory=dict)
    train_idx: np.ndarray | None = None
    val_idx: np.ndarray | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    provenance: Provenance = field(default_factory=Provenance)
    prg_run: object | None = None  # infi.prg.PRGRun: the compact CNN (PRG or KD) of any source
    teacher: object | None = None  # the teacher itself when it runs on any images (mixed views)
    teacher_notes: list[str] = field(default_factory=list)  # what the last teacher run skipped
    # A bundle of uploaded images holds their ids and content hash, not the images: this keeps
    # that description until the same images are loaded again (see set_dataset).
    dataset_ref: dict | None = None
    # An embedding store opened as the dataset (infi.store): embeddings, no pixels.
    store: object | None = None
    # Student scores per split with the weights they came from (see student_proba).
    _scores: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_saved(cls, *, seed: int, dataset: ImageSet | None, dataset_ref: dict | None,
                   eval_sets: dict[str, EvalSet], teacher_name: str | None,
                   class_names: Sequence[str], labels: np.ndarray | None, P: np.ndarray,
                   encoder_id: str | None, corpus: Corpus | None, concepts: ConceptMatrix,
                   student: ConceptStudent | None, student_params: dict,
                   split: tuple[np.ndarray, np.ndarray] | None,
                   bounds: tuple[np.ndarray, np.ndarray] | None, provenance: Provenance,
                   cache: ArrayCache | None = None) -> Session:
        """A session rebuilt from saved state (``infi.bundle`` reads the file, this puts it
        together); checks that the parts fit each other before anything is set."""
        n, K = concepts.X.shape
        C = len(class_names)
        if P.shape != (n, C):
            raise InputError(f"teacher outputs of shape {P.shape} for {n} images and {C} classes")
        check_probabilities(P, n, C, "the saved teacher outputs")
        _finite("concept scores", concepts.X)
        for name, e in eval_sets.items():
            if e.concepts is None or e.P is None or e.concepts.X.shape != (len(e.images), K):
                raise InputError(f"evaluation set {name!r}: scores do not fit {len(e.images)} images and {K} concepts")
            check_probabilities(e.P, len(e.images), C, f"the saved teacher outputs on {name!r}")
            _finite(f"concept scores of {name!r}", e.concepts.X)
        if dataset is not None and len(dataset) != n:
            raise InputError(f"the dataset has {len(dataset)} images for {n} rows")
        if dataset is None and dataset_ref and dataset_ref.get("ids") is not None \
                and len(dataset_ref["ids"]) != n:
            raise InputError(f"the dataset lists {len(dataset_ref['ids'])} ids for {n} rows")
        if labels is not None and (labels.shape != (n,) or labels.dtype.kind not in "iu"
                                   or (len(labels) and (labels.min() < -1 or labels.max() >= C))):
            raise InputError(f"labels: expected {n} class indices in [-1, {C}), got {labels.dtype} {labels.shape}")
        if student is not None:
            if split is None or bounds is None:
                raise InputError("a student needs its train/validation split and bounds")
            _check_student(student, n, K, C)
            if bounds[0].shape != student.coef_.shape or bounds[1].shape != student.coef_.shape:
                raise InputError("the bounds do not have the student's shape")
            if np.isnan(bounds[0]).any() or np.isnan(bounds[1]).any() or (bounds[0] > bounds[1]).any():
                raise InputError("the bounds hold NaN or a lower bound above its upper bound")
            for name, idx in zip(("train", "validation"), split):
                if idx.ndim != 1 or idx.dtype.kind not in "iu" or (len(idx) and (idx.min() < 0 or idx.max() >= n)):
                    raise InputError(f"the {name} split must list row numbers in [0, {n}); got {idx.dtype} "
                                     f"{idx.shape}")
            for i, step in enumerate(provenance.steps):
                shapes = (step.coef.shape, step.lower.shape, step.upper.shape, step.intercept.shape)
                if shapes != (student.coef_.shape,) * 3 + (student.intercept_.shape,):
                    raise InputError(f"provenance step {i} holds weights of another shape than the student")
                _finite(f"provenance step {i}", step.coef)
        s = cls(cache=cache or ArrayCache(), seed=int(seed))
        s.dataset, s.dataset_ref = dataset, (None if dataset is not None else dataset_ref)
        s.eval_sets = dict(eval_sets)
        s.teacher_name, s.class_names, s.labels, s.P = teacher_name, tuple(class_names), labels, P
        s.encoder_id, s.corpus, s.mode, s.concepts = encoder_id, corpus, concepts.mode, concepts
        s.student, s.student_params = student, dict(student_params)
        if student is not None:
            s.train_idx, s.val_idx = split
            s.lower, s.upper = bounds
        s.provenance = provenance
        return s

    def snapshot(self) -> Session:
        """A copy that later steps cannot change: every step replaces fields rather than
        mutating them, except the evaluation sets' entries, which are copied."""
        snap = copy.copy(self)
        snap._scores = {}
        snap.eval_sets = {name: copy.copy(e) for name, e in self.eval_sets.items()}
        if self.student is not None:
            snap.student = copy.copy(self.student)
        snap.provenance = Provenance(list(self.provenance.steps))
        return snap

    # --- invalidation ------------------------------------------------------------------------

    def _clear_student(self) -> list[str]:
        had = self.student is not None
        self.student, self._scores = None, {}
        self.train_idx = self.val_idx = self.lower = self.upper = None
        self.provenance = Provenance()
        return ["student and provenance"] if had else []

    def _clear_concepts(self) -> list[str]:
        had = self.concepts is not None
        self.concepts = None
        for e in self.eval_sets.values():
            e.concepts = None
        return (["concept scores"] if had else []) + self._clear_student()

    def _clear_embeddings(self) -> list[str]:
        had = self.embeddings is not None
        self.embeddings = None
        for e in self.eval_sets.values():
            e.embeddings = None
        return (["image embeddings"] if had else []) + self._clear_concepts()

    def _clear_teacher(self) -> list[str]:
        had = self.P is not None
        self.P = None
        self.teacher_name = None
        self.teacher = None
        for e in self.eval_sets.values():
            e.P = None
        return (["teacher outputs"] if had else []) + self._clear_student()

    # --- steps -------------------------------------------------------------------------------

    def set_dataset(self, images: ImageSet, eval_sets: dict[str, ImageSet] | None = None) -> list[str]:
        """A new dataset clears every result computed from the old one; returns what was cleared.
        The images a loaded bundle refers to (same ids and content hash) are re-attached instead,
        keeping every result."""
        if self.reattaches(images):
            self.dataset, self.dataset_ref = images, None
            for name, extra in (eval_sets or {}).items():
                self.eval_sets.setdefault(name, EvalSet(extra))
            return []
        self.dataset_ref, self.store = None, None
        cleared = self._clear_teacher() + self._clear_embeddings() + self._clear_prg()
        self.dataset = images
        self.eval_sets = {name: EvalSet(s) for name, s in (eval_sets or {}).items()}
        self.class_names = images.class_names
        self.labels = images.labels
        return sorted(set(cleared), key=cleared.index)

    def open_store(self, store) -> list[str]:
        """Use an embedding store (``infi.store.EmbeddingStore``) as the dataset: its ids, labels
        and embeddings, with its encoder; no pixel is loaded. Clears what came from another
        dataset and returns it; the store a loaded bundle was made from keeps every result."""
        if self.reattaches_store(store):
            self.store = store
            self.dataset_ref = store.reference()
            return []
        cleared = self._clear_teacher() + self._clear_embeddings() + self._clear_prg()
        self.dataset, self.eval_sets, self.store = None, {}, store
        self.dataset_ref = store.reference()
        self.class_names, self.labels = store.class_names, store.labels
        self.encoder_id = store.encoder
        self.dense = store.manifest.get("dense") or default_method(store.encoder)
        self.resolution = store.manifest.get("resolution")
        self.embeddings = ImageEmbeddings(store.embeddings, None, int(store.manifest["grid"]), "vanilla")
        return sorted(set(cleared), key=cleared.index)

    def reattaches_store(self, store) -> bool:
        """Whether ``store`` holds this session's images (same ids) embedded with its encoder, so
        opening it keeps every result; a store of the same ids made with another encoder does not."""
        ref = self.dataset_ref
        same_encoder = (self.encoder_id is None
                        or normalize_reference(self.encoder_id) == normalize_reference(store.encoder))
        return (self.dataset is None and ref is not None and ref.get("content_hash") == store.content_hash
                and list(ref.get("ids") or ()) == list(store.ids) and same_encoder)

    def image(self, row: int):
        """The image of a dataset row for display: loaded, or read from a store's path when that
        is readable here; None when the session holds no pixels for it."""
        if self.dataset is not None:
            return self.dataset.image(row)
        if self.store is not None:
            return self.store.image(row)
        return None

    def image_ids(self) -> list[str]:
        """The dataset's ids, whether its images are loaded or only referenced by a bundle."""
        if self.dataset is not None:
            return list(self.dataset.ids)
        if self.dataset_ref and self.dataset_ref.get("ids") is not None:
            return list(self.dataset_ref["ids"])
        return [str(i) for i in range(len(self.P))] if self.P is not None else []

    def reattaches(self, images: ImageSet) -> bool:
        """Whether ``images`` are the ones this session's bundle was made from."""
        ref = self.dataset_ref
        return (self.dataset is None and ref is not None and images.content_hash == ref.get("content_hash")
                and list(images.ids) == list(ref.get("ids") or ()))

    def run_teacher(self, teacher: Teacher, progress: Progress | None = None) -> list[str]:
        """Teacher probabilities for the dataset (and evaluation sets). With an embedding store,
        the teacher is a predictions file keyed by the store's ids, or CLIP zero-shot on the
        stored embeddings (the store's encoder)."""
        if self.dataset is None and self.store is not None:
            return self._run_teacher_on_store(teacher, progress)
        data = self._need_dataset()
        names = tuple(teacher.class_names)
        labels = self.labels_for(data, names)
        P = check_probabilities(teacher.predict_proba(data, progress), len(data), len(names), teacher.name)
        evals, self.teacher_notes = {}, list(getattr(teacher, "notes", []))
        for name, e in self.eval_sets.items():
            self.labels_for(e.images, names)
            if not getattr(teacher, "runs_on_any_images", True):
                # A predictions file holds outputs for the dataset's images only.
                self.teacher_notes.append(f"{teacher.name} has no outputs for the evaluation set "
                                          f"'{name}', so the student is not evaluated on it")
                continue
            evals[name] = check_probabilities(teacher.predict_proba(e.images), len(e.images),
                                              len(names), f"{teacher.name} on {name}")
        cleared = self._clear_teacher()
        self.P, self.teacher_name, self.class_names, self.labels = P, teacher.name, names, labels
        self.teacher = teacher if getattr(teacher, "runs_on_any_images", True) else None
        for name, e in self.eval_sets.items():
            e.P = evals.get(name)
        return cleared

    def _run_teacher_on_store(self, teacher: Teacher, progress: Progress | None) -> list[str]:
        from infi.teachers import ClipZeroShotTeacher, softmax

        store = self.store
        names = tuple(teacher.class_names)
        ids_only = ImageSet(list(store.ids), _no_pixels, store.labels, store.class_names,
                            {"kind": "embedding store"}, content_hash=store.content_hash)
        labels = self.labels_for(ids_only, names)
        if isinstance(teacher, ClipZeroShotTeacher):
            if normalize_reference(teacher.encoder.name) != normalize_reference(store.encoder):
                raise InputError(f"zero-shot: the store was embedded with {store.encoder}; use that encoder "
                                 f"for zero-shot, not {teacher.encoder.name}")
            logits, _ = teacher.ensemble(teacher.template_logits(store.embeddings))
            P = softmax(logits.astype(np.float64))
            if progress:
                progress(len(store), len(store))
        elif getattr(teacher, "runs_on_any_images", True):
            raise InputError(f"{teacher.name} runs on pixels, and an embedding store holds embeddings: give the "
                             "teacher's outputs as a predictions file keyed by the store's ids, or use CLIP "
                             "zero-shot on the stored embeddings")
        else:
            P = teacher.predict_proba(ids_only, progress)
        P = check_probabilities(P, len(store), len(names), teacher.name)
        self.teacher_notes = list(getattr(teacher, "notes", []))
        cleared = self._clear_teacher()
        self.P, self.teacher_name, self.class_names, self.labels = P, teacher.name, names, labels
        return cleared

    @staticmethod
    def labels_for(data: ImageSet, names: Sequence[str]) -> np.ndarray | None:
        """``data``'s labels re-indexed to the class order ``names`` (the teacher's); None without
        labels; classes that differ are an error."""
        names = tuple(names)
        if data.labels is None or data.class_names is None:
            return None
        if tuple(data.class_names) == names:
            return data.labels
        if set(data.class_names) == set(names):
            remap = np.array([names.index(c) for c in data.class_names])
            return np.where(data.labels >= 0, remap[np.maximum(data.labels, 0)], -1)
        raise InputError(f"The teacher's classes {list(names)} do not match the dataset's classes "
                         f"{list(data.class_names)} ({len(names)} vs {len(data.class_names)}); "
                         "use a teacher for these classes or a dataset without labels")

    def set_encoder(self, encoder_id: str) -> list[str]:
        """Choose the CLIP encoder; clears the embeddings, concepts, student and a compact model
        made with another encoder (its teacher or views came from that one). A compact model made
        with this very encoder (the default, before any was chosen) stays."""
        if encoder_id == self.encoder_id:
            return []
        if self.store is not None and self.dataset is None:
            if normalize_reference(encoder_id) == normalize_reference(self.store.encoder):
                return []
            raise InputError(f"encoder: the embedding store was made with {self.store.encoder}; its images are "
                             f"not loaded, so they cannot be embedded with {encoder_id} (embed them again with "
                             "`infi embed --encoder ...`)")
        figures = getattr(self.prg_run, "figures", {}) or {}
        used = figures.get("encoder") or figures.get("teacher_encoder")
        keep_compact = used is not None and used == encoder_id
        cleared = self._clear_embeddings() + ([] if keep_compact else self._clear_prg())
        self.encoder_id = encoder_id
        self.dense = default_method(encoder_id)
        return cleared

    def _clear_prg(self) -> list[str]:
        had = self.prg_run is not None
        self.prg_run = None
        return ["compact model"] if had else []

    def embed(self, progress: Progress | None = None, patches: bool = True) -> ImageEmbeddings:
        """Image embeddings, from the content-addressed cache when this dataset was seen before."""
        if self.dataset is None and self.store is not None:
            if patches:
                raise InputError("an embedding store holds global embeddings only; region scores are made "
                                 "while embedding (infi embed --scores --mode segments)")
            if self.embeddings is None:
                self.embeddings = ImageEmbeddings(self.store.embeddings, None, int(self.store.manifest["grid"]))
            return self.embeddings
        data = self._need_dataset()
        if self.encoder_id is None:
            raise SessionError("Choose an encoder before computing embeddings")
        if self.embeddings is None or (patches and (self.embeddings.patches is None
                                                    or self.embeddings.dense != self.dense)):
            self.embeddings = self._embed(data, patches, progress)
        for e in self.eval_sets.values():
            if e.embeddings is None or (patches and (e.embeddings.patches is None or e.embeddings.dense != self.dense)):
                e.embeddings = self._embed(e.images, patches, None)
        return self.embeddings

    def _embed(self, data: ImageSet, patches: bool, progress: Progress | None) -> ImageEmbeddings:
        dense = self.dense if patches else "vanilla"
        key = cache_key("embeddings", data.content_hash, self.encoder_id, patches, dense)
        hit = self.cache.get(key)
        if hit is not None:
            if progress:
                progress(len(data), len(data))
            return ImageEmbeddings(hit["global"], hit.get("patches"), int(hit["grid"][0]), dense)
        encoder = shared_encoder(self.encoder_id)
        source = data.arrays if data.arrays is not None else data.lazy()  # one batch decoded at a time
        emb = encoder.embed_images(source, patches=patches, progress=progress, dense=dense)
        arrays = {"global": emb.global_, "grid": np.array([emb.grid])}
        if emb.patches is not None:
            emb.patches = emb.patches.astype(np.float16)  # halves memory; scores stay float32
            arrays["patches"] = emb.patches
        self.cache.put(key, arrays)
        return emb

    def extract_concepts(self, corpus: Corpus, mode: str = "global",
                         progress: Progress | None = None, dense: str | None = None,
                         resolution: int | None = None) -> ConceptMatrix:
        """Concept scores X [N, K] for the corpus; clears the student (its concepts changed).
        ``dense`` picks the last-block method of region modes (``infi.dense``; kept if None);
        ``resolution`` their input size (None: the checkpoint's own; e.g. 448 for a finer grid).
        An embedding store fixes both when it was embedded (``infi embed --scores``)."""
        if self.dataset is None and self.store is not None:
            return self._store_concepts(corpus, mode, progress)
        if mode != "global":
            self.resolution = resolution
        if dense is not None:
            if dense not in DENSE_METHODS:
                raise InputError(f"dense: {dense!r} is not one of {list(DENSE_METHODS)}")
            self.dense = dense
        bank = build_bank(shared_encoder(self.encoder_id), corpus)
        if mode == "global":
            self.embed(progress, patches=False)
            X = concept_scores(self.embeddings, bank, mode)
            cleared_eval = {name: concept_scores(e.embeddings, bank, mode) for name, e in self.eval_sets.items()}
        else:
            X, self.embeddings = self._region_scores(self.dataset, bank, corpus, mode, progress)
            cleared_eval = {}
            for name, e in self.eval_sets.items():
                cleared_eval[name], e.embeddings = self._region_scores(e.images, bank, corpus, mode, None)
        self._clear_concepts()
        self.corpus, self.mode, self.concepts = corpus, mode, X
        for name, e in self.eval_sets.items():
            e.concepts = cleared_eval[name]
        return X

    def _store_concepts(self, corpus: Corpus, mode: str, progress: Progress | None) -> ConceptMatrix:
        """Concept scores of a store: the ones computed while embedding when they are for this
        corpus and region setting, else (global mode) from the stored embeddings."""
        made = self.store.manifest
        X = self.store.stored_scores(corpus, mode, made.get("dense"), made.get("resolution"))
        if X is None:
            if mode != "global":
                held = ("scores for another concept list or region mode" if made.get("mode")
                        else "global embeddings only")
                raise InputError(f"regions: this store holds {held}; {mode} scores are made while embedding "
                                 f"(infi embed --scores --mode {mode} with this concept list), or choose global")
            bank = build_bank(shared_encoder(self.encoder_id), corpus)
            X = concept_scores(self.embed(patches=False), bank, mode)
        if progress:
            progress(len(X.X), len(X.X))
        self._clear_concepts()
        self.corpus, self.mode, self.concepts = corpus, mode, X
        return X

    def _region_scores(self, data: ImageSet, bank, corpus: Corpus, mode: str, progress: Progress | None,
                       batch_size: int = 32) -> tuple[ConceptMatrix, ImageEmbeddings]:
        """Region scores streamed batch by batch (patches -> regions -> scores): only the global
        embeddings and the concept matrix are kept, never the patch embeddings [N, P, D] (at
        ~200 KB per image for ViT-B/16 they once filled a hosted server). Cached, memory and
        disk, by dataset, encoder, corpus, mode and dense method."""
        key = cache_key("scores", data.content_hash, self.encoder_id, corpus.to_dict(), mode, self.dense,
                        self.resolution)
        hit = self.cache.get(key)
        if hit is not None:
            if progress:
                progress(len(data), len(data))
            return (ConceptMatrix(hit["X"], bank.names, mode),
                    ImageEmbeddings(hit["global"], None, int(hit["grid"][0]), self.dense))
        encoder = shared_encoder(self.encoder_id)
        scores, globals_ = [], []
        for start in range(0, len(data), batch_size):
            rows = range(start, min(start + batch_size, len(data)))
            images = data.arrays[start:rows.stop] if data.arrays is not None else data.images(rows)
            emb = encoder.embed_images(images, batch_size=batch_size, patches=True, dense=self.dense,
                                       resolution=self.resolution)
            scores.append(concept_scores(emb, bank, mode).X)
            globals_.append(emb.global_)
            if progress:
                progress(rows.stop, len(data))
        X = np.concatenate(scores) if scores else np.zeros((0, len(bank.names)), np.float32)
        g = np.concatenate(globals_) if globals_ else np.zeros((0, encoder.dim), np.float32)
        self.cache.put(key, {"X": X, "global": g, "grid": np.array([encoder.grid])})
        return ConceptMatrix(X, bank.names, mode), ImageEmbeddings(g, None, encoder.grid, self.dense)

    def drop_concepts(self, names: Sequence[str]) -> list[str]:
        """Remove concepts from the matrix (and each evaluation set's) without extracting again;
        clears the student, whose weights were for the old columns. Returns what was cleared."""
        if self.concepts is None:
            raise SessionError("Dropping concepts needs extracted concepts first")
        unknown = sorted(set(names) - set(self.concepts.names))
        if unknown:
            raise InputError(f"concepts: {unknown[:5]} are not in the concept matrix")
        if len(set(names)) >= len(self.concepts.names):
            raise InputError("concepts: dropping every concept leaves nothing to distill on")
        cleared = self._clear_student()
        self.concepts = self.concepts.without(names)
        self.corpus = self.corpus.with_concepts(list(self.concepts.names)) if self.corpus else None
        for e in self.eval_sets.values():
            if e.concepts is not None:
                e.concepts = e.concepts.without(names)
        return cleared

    def distill(self, config: DistillConfig | None = None, progress: Progress | None = None,
                **changes) -> dict:
        """Fit the concept student on the training split; returns held-out metrics.

        ``config`` defaults to ``DistillConfig()``; keyword ``changes`` (``n_members=5``) adjust it.
        """
        if self.concepts is None or self.P is None:
            raise SessionError("Distilling needs teacher outputs and concept scores first")
        config = (config or DistillConfig()).with_changes(**changes)
        train_idx, val_idx = holdout_split(len(self.P), config.validation_share,
                                           np.random.default_rng(self.seed))
        train_idx, val_idx = np.sort(train_idx), np.sort(val_idx)
        if len(train_idx) < 10:
            raise InputError(f"The training split has {len(train_idx)} images; at least 10 are needed")
        student = ConceptStudent(**config.student_params(), random_state=self.seed)
        student.fit(self.concepts.X[train_idx], self.P[train_idx])
        if progress:
            progress(1, 1)
        self._clear_student()
        self.student, self.train_idx, self.val_idx = student, train_idx, val_idx
        self.student_params = asdict(config)
        self.lower, self.upper = empty_bounds(student.coef_.shape)
        after = self.evaluate()
        self._log([], {}, after, [], "fit")
        return after

    def _log(self, actions: list[dict], before: dict, after: dict, touched: list[str],
             label: str) -> ProvenanceStep:
        """Append a provenance step holding a snapshot of the current weights and bounds."""
        student = self._need_student()
        step = ProvenanceStep(actions, before, after, student.coef_.copy(), student.intercept_.copy(),
                              self.lower.copy(), self.upper.copy(), touched, label=label)
        self.provenance.add(step)
        return step

    def tune(self, actions: Sequence[TuningAction], label: str = "",
             hold_others: float | None = None) -> ProvenanceStep:
        """Apply edits: tighten bounds, refit only the touched classes, log a provenance step.

        Group actions expand to the group's concepts (``concept_groups``). ``hold_others`` (a
        band such as 0.1) holds every other weight of the touched classes within ``w ± band·|w|``,
        so correlated concepts cannot quietly take over a removed one's role.
        """
        student = self._need_student()
        if not actions:
            raise InputError("actions: no edit to apply")
        expanded = expand_groups(actions, self.concept_groups())
        lower, upper, touched = apply_actions(expanded, student.coef_, self.lower, self.upper,
                                              self.concepts.names, self.class_names, hold_others)
        if np.array_equal(lower, self.lower) and np.array_equal(upper, self.upper):
            raise InputError("nothing to change: these edits are already in place (the bounds they set "
                             "are the current ones)")
        before = self.evaluate()
        student.refit(self.concepts.X[self.train_idx], self.P[self.train_idx], lower, upper,
                      class_indices=touched)
        self.lower, self.upper = lower, upper
        step = self._log([asdict(a) for a in expanded], before, self.evaluate(),
                         [self.class_names[c] for c in touched], label)
        step.hold_others = hold_others
        return step

    def in_place(self, actions: Sequence[TuningAction]) -> list[bool]:
        """For each action, whether it is already in effect (applied alone, without holding the
        others, it would set no bound that is not already set), so a UI can say so before Apply."""
        student = self._need_student()
        groups = self.concept_groups()
        out = []
        for action in actions:
            lower, upper, _ = apply_actions(expand_groups([action], groups), student.coef_, self.lower,
                                            self.upper, self.concepts.names, self.class_names, None)
            out.append(bool(np.array_equal(lower, self.lower) and np.array_equal(upper, self.upper)))
        return out

    def concept_groups(self) -> dict[str, list[str]]:
        """The student's concepts by corpus category (``background`` → grass, sky, …)."""
        if self.concepts is None:
            return {}
        category = dict(zip(self.corpus.concepts, self.corpus.categories)) if self.corpus else {}
        groups: dict[str, list[str]] = {}
        for name in self.concepts.names:
            groups.setdefault(category.get(name, "custom"), []).append(name)
        return groups

    def influence_table(self, class_name: str | None = None) -> pd.DataFrame:
        """One row per concept, most influential on ``class_name`` first (None: each concept's
        strongest class): group, weight, influence (|weight| x mean |standardised score|), spread."""
        student = self._need_student()
        X = self.concepts.X[self.train_idx]
        x_std = np.abs((X - student.mean_) / student.scale_).mean(0)
        if class_name is None:
            W, S = student.weights_, student.spread_
            pick = np.abs(W).argmax(1)
            weight, spread = W[np.arange(len(W)), pick], S[np.arange(len(S)), pick]
        else:
            if class_name not in self.class_names:
                raise InputError(f"class: unknown class {class_name!r}; choose from {list(self.class_names)}")
            c = self.class_names.index(class_name)
            weight, spread = student.weights_[:, c], student.spread_[:, c]
        group_of = {c: g for g, members in self.concept_groups().items() for c in members}
        frame = pd.DataFrame({
            "concept": list(self.concepts.names),
            "group": [group_of.get(n, "") for n in self.concepts.names],
            "weight": weight.astype(float),
            "influence": (np.abs(weight) * x_std).astype(float),
            "spread": spread.astype(float),
        })
        return frame.sort_values("influence", ascending=False, kind="stable").reset_index(drop=True)

    def compensation(self, index: int = -1, top: int = 5) -> list[dict]:
        """What took over after provenance step ``index``: the weights of its touched classes
        that no action named and that grew most in magnitude (see ``tuning.compensation``)."""
        steps = self.provenance.steps
        index = index % len(steps) if steps else 0
        if index == 0 or not steps[index].actions:
            return []
        step = steps[index]
        return compensation(steps[index - 1].coef, step.coef, step.actions, self.concepts.names,
                            self.class_names, step.touched_classes, top)

    def restore(self, index: int) -> ProvenanceStep:
        """Return to the weights and bounds of step ``index``; logged as a new step, so the log
        only grows and nothing is lost."""
        student = self._need_student()
        if not 0 <= index < len(self.provenance):
            raise InputError(f"step: no provenance step {index}; there are {len(self.provenance)}")
        target = self.provenance.steps[index]
        before = self.evaluate()
        student.coef_, student.intercept_ = target.coef.copy(), target.intercept.copy()
        self.lower, self.upper = target.lower.copy(), target.upper.copy()
        return self._log([], before, self.evaluate(), [], f"restore step {index}")

    def undo(self) -> ProvenanceStep:
        """Go back to the weights and bounds before the last step (logged, like a restore)."""
        if len(self.provenance) < 2:
            raise InputError("undo: there is no edit to undo yet")
        step = self.restore(len(self.provenance) - 2)
        step.label = f"undo step {len(self.provenance) - 2}"
        return step

    def predictions_at(self, index: int, split: str | None = None) -> np.ndarray:
        """The student's class per image at provenance step ``index`` (0: the fit), on the
        held-out split (``split`` None) or on an evaluation set."""
        student = copy.copy(self._need_student())
        step = self.provenance.steps[index]
        student.coef_, student.intercept_ = step.coef, step.intercept
        X = self.concepts.X[self.val_idx] if split is None else self.eval_sets[split].concepts.X
        return student.predict_proba(X).argmax(1)

    def changed_since_fit(self, split: str | None = None) -> dict[str, np.ndarray]:
        """Images whose student answer changed since the fit: row indices into the split (the
        held-out rows, or an evaluation set), the class at the fit, now, and the true label
        (-1 when unknown)."""
        before, now = self.predictions_at(0, split), self.predictions_at(-1, split)
        if split is None:
            rows = self.val_idx
            labels = self.labels[rows] if self.labels is not None else np.full(len(rows), -1)
        else:
            rows = np.arange(len(self.eval_sets[split].images))
            found = self.labels_for(self.eval_sets[split].images, self.class_names)
            labels = found if found is not None else np.full(len(rows), -1)
        changed = np.flatnonzero(before != now)
        return {"rows": rows[changed], "before": before[changed], "now": now[changed],
                "label": labels[changed]}

    def student_proba(self, split: str | None = None) -> np.ndarray:
        """The student's probabilities on the held-out rows (None) or an evaluation set. Only the
        classes whose weights changed since the last call are predicted again: an edit refits one
        class, and predicting 100 classes x 20 members x 584 concepts on 20,000 rows took ~2 s."""
        student = self._need_student()
        source = (student, self.concepts, self.val_idx) if split is None else (student, self.eval_sets[split].concepts)
        X = self.concepts.X[self.val_idx] if split is None else source[1].X
        hit = self._scores.get(split)
        if hit is None or len(hit["source"]) != len(source) or any(a is not b for a, b in zip(hit["source"], source)) \
                or hit["coef"].shape != student.coef_.shape:
            changed = np.arange(student.coef_.shape[2])
            hit = {"source": source, "scores": np.empty((len(X), len(changed)))}
        else:
            changed = np.flatnonzero(~(hit["coef"] == student.coef_).all(axis=(0, 1))
                                     | ~(hit["intercept"] == student.intercept_).all(axis=0))
        if len(changed):
            hit["scores"][:, changed] = student.class_scores(X, changed)
        hit["coef"], hit["intercept"] = student.coef_.copy(), student.intercept_.copy()
        self._scores[split] = hit
        scores = hit["scores"]
        return scores / np.maximum(scores.sum(1, keepdims=True), 1e-12)

    def evaluate(self) -> dict:
        """Held-out metrics (fidelity, accuracy, per class) plus each evaluation set's."""
        self._need_student()
        v = self.val_idx
        labels = self.labels[v] if self.labels is not None else None
        out = metrics.summary(self.student_proba(), self.P[v],
                              self.class_names, labels)
        for name, e in self.eval_sets.items():
            if e.concepts is None or e.P is None:
                continue
            proba = self.student_proba(name)
            out[f"{name}_fidelity"] = metrics.fidelity(proba, e.P)
            labels_e = self.labels_for(e.images, self.class_names)
            out[f"{name}_accuracy"] = metrics.accuracy(proba, labels_e)
            out[f"{name}_teacher_accuracy"] = metrics.accuracy(e.P, labels_e)
            if labels_e is not None:
                out[f"{name}_per_class_accuracy"] = metrics.per_class_accuracy(proba, labels_e, len(self.class_names))
        return out

    def run_prg(self, config: PRGConfig | None = None, class_names: Sequence[str] | None = None,
                templates: Sequence[str] | None = None, image_size: int | None = None,
                progress=None, teacher_progress: Progress | None = None):
        """PRG: distill a compact CNN from CLIP zero-shot over class names (the session's encoder,
        else the default one), reading no label during training.

        Class names default to the dataset's; dataset labels are re-indexed to their order and
        used only to report accuracy, on the dataset and on every labelled evaluation set. The
        image size defaults to the dataset's own (64 for files of mixed sizes).
        """
        from infi import prg
        from infi.teachers import ZERO_SHOT_TEMPLATES, ClipZeroShotTeacher, parse_class_names

        data = self._need_dataset()
        names = parse_class_names(class_names) or tuple(data.class_names or ())
        if len(names) < 2:
            raise InputError("class names: PRG needs at least two class names; give them, or use a "
                             "dataset with class folders")
        size = image_size or (data.arrays.shape[1] if data.arrays is not None else 64)
        teacher = ClipZeroShotTeacher(shared_encoder(self.encoder_id or DEFAULT_ENCODER), names,
                                      tuple(templates or ZERO_SHOT_TEMPLATES))
        labels = self.labels_for(data, names)
        run = prg.distill_images(data.as_arrays(size), labels, teacher, config or PRGConfig(),
                                 progress, teacher_progress)
        for name, extra in self.eval_sets.items():
            extra_labels = self.labels_for(extra.images, names)
            if extra_labels is not None and (extra_labels >= 0).any():
                logits = prg.predict_logits(run.result.model, extra.images.as_arrays(size))
                run.figures[f"{name}_student_accuracy"] = metrics.accuracy(logits, extra_labels)
        self.prg_run = run
        return run

    def compact(self, source: str = "student", config: PRGConfig | None = None, views: int = 8,
                class_names: Sequence[str] | None = None, image_size: int | None = None,
                progress=None, view_progress: Progress | None = None, evaluate: bool = True):
        """A compact CNN distilled from ``source`` (``infi.compact``): CLIP ``zero-shot`` over class
        names, the session's ``teacher``, or its concept ``student`` after every edit (the repaired
        behaviour). The session's images and ``views`` CutMix views of them per image, each labelled
        by the source, are the training data; no label is read. With ``evaluate``, accuracy on each
        labelled evaluation set for the source, the compact model and the teacher (labels read
        after), and the sizes and CPU latencies to compare. The run becomes ``prg_run``."""
        from infi import compact, prg
        from infi.teachers import ZERO_SHOT_TEMPLATES, ClipZeroShotTeacher, parse_class_names

        compact.check_source(source)
        config = config or PRGConfig()
        config.validate()
        data = self._need_dataset()
        size = image_size or (data.arrays.shape[1] if data.arrays is not None else 64)
        encoder = shared_encoder(self.encoder_id or DEFAULT_ENCODER)
        zero_shot = None
        notes: list[str] = []
        if source == "zero-shot":
            names = parse_class_names(class_names)
            if not names and data.class_names:
                names = tuple(data.class_names)
                notes.append(f"No class names were given, so the dataset's were used: {', '.join(names)}.")
            if len(names) < 2:
                raise InputError("class names: a zero-shot source needs at least two class names; give them, "
                                 "or use a dataset with class folders")
            zero_shot = ClipZeroShotTeacher(encoder, names, tuple(ZERO_SHOT_TEMPLATES))
        else:
            if self.P is None:
                raise SessionError("Run a teacher first")
            names = tuple(self.class_names)
        student = self._need_student() if source == "student" else None
        label = self._source_labeller(source, encoder, student, zero_shot)
        images = data.as_arrays(size)
        known = None
        if source != "zero-shot":  # the images' own answers are known already
            P = student.predict_proba(self.concepts.X) if student is not None else self.P
            embedded = (self.embed(patches=False).global_ if self.encoder_id is not None
                        else encoder.embed_images(images, patches=False).global_)
            known = (embedded, P)
        if source == "teacher" and self.teacher is None:
            notes.append(f"{self.teacher_name} gave its outputs for the loaded images only (a file, or a "
                         "restored session), so no mixed view could be labelled: the compact model learned "
                         "from the images alone, where a shortcut in them can come back.")
            views = 0
        texts = (prg.class_text_embeddings(zero_shot) if zero_shot
                 else encoder.embed_texts([f"a photo of a {c}" for c in names]))
        prepared = compact.prepare(images, label, texts, names, views, config.seed, view_progress, known)
        notes += prepared.notes
        result = compact.train(prepared, config, progress)
        logits = prg.predict_logits(result.model, images)
        source_logits = prepared.targets.logits[:prepared.n_images]
        figures = {"source": source, "source_fingerprint": self.source_fingerprint(source), "encoder": encoder.name,
                   "views_per_image": (len(prepared.images) - prepared.n_images) // len(images),
                   "agreement_with_source": prg.agreement(logits, source_logits), "notes": notes,
                   "student_parameters": prg.n_parameters(result.model),
                   "student_ms_per_image": prg.ms_per_image(result.model, size)}
        if evaluate:
            figures.update(self._compact_costs(encoder, images[:16]))
            own = self.labels_for(data, names)
            if own is not None and (own >= 0).any():  # seen in training, without their labels
                figures["loaded_compact_accuracy"] = metrics.accuracy(logits, own)
                figures["loaded_source_accuracy"] = metrics.accuracy(source_logits, own)
                if self.P is not None and tuple(self.class_names or ()) == tuple(names):
                    figures["loaded_teacher_accuracy"] = metrics.accuracy(self.P, own)
            for name, e in self.eval_sets.items():
                labels = self.labels_for(e.images, names)
                if labels is None or not (labels >= 0).any():
                    continue
                arrays = e.images.as_arrays(size)
                figures[f"{name}_compact_accuracy"] = metrics.accuracy(prg.predict_logits(result.model, arrays), labels)
                if zero_shot is not None:
                    figures[f"{name}_source_accuracy"] = metrics.accuracy(label(arrays)[1], labels)
                elif student is not None and e.concepts is not None:
                    figures[f"{name}_source_accuracy"] = metrics.accuracy(student.predict_proba(e.concepts.X), labels)
                elif e.P is not None:
                    figures[f"{name}_source_accuracy"] = metrics.accuracy(e.P, labels)
                if e.P is not None and tuple(self.class_names or ()) == tuple(names):
                    figures[f"{name}_teacher_accuracy"] = metrics.accuracy(e.P, labels)
        targets = prg.TeacherTargets(prepared.targets.embeddings[:prepared.n_images], source_logits,
                                     prepared.targets.class_embeddings, tuple(names))
        self.prg_run = prg.PRGRun(result, targets, size, figures)
        return self.prg_run

    def source_fingerprint(self, source: str) -> str | None:
        """What a compact model learned from, as a digest: the student's weights, the teacher's
        outputs, or the encoder (zero-shot); a page compares it to say the source changed since."""
        import hashlib

        if source == "student" and self.student is not None:
            parts = [self.student.coef_, self.student.intercept_]
        elif source == "teacher" and self.P is not None:
            parts = [self.P]
        else:
            return hashlib.sha256(str(self.encoder_id or DEFAULT_ENCODER).encode()).hexdigest()[:16]
        digest = hashlib.sha256()
        for part in parts:
            digest.update(np.ascontiguousarray(part).tobytes())
        return digest.hexdigest()[:16]

    def _source_labeller(self, source: str, encoder, student, zero_shot):
        """images -> (unit CLIP embeddings, the source's probabilities), for any images."""
        from infi.teachers import softmax

        if source == "zero-shot":
            def label(arrays):
                g = encoder.embed_images(arrays, patches=False).global_
                return g, softmax(zero_shot.ensemble(zero_shot.template_logits(g))[0])
        elif source == "teacher":
            teacher = self.teacher

            def label(arrays):
                g = encoder.embed_images(arrays, patches=False).global_
                views = from_arrays([f"view_{i}" for i in range(len(arrays))], arrays, None, None, {"kind": "views"})
                return g, check_probabilities(teacher.predict_proba(views), len(arrays), len(self.class_names),
                                              f"{self.teacher_name} on mixed views")
        else:
            bank = build_bank(encoder, self.corpus)
            missing = [n for n in self.concepts.names if n not in bank.names]
            if missing:
                raise SessionError(f"The concept list no longer holds {missing[:5]}; extract concepts again")
            columns = [list(bank.names).index(n) for n in self.concepts.names]

            def label(arrays):
                regions = self.mode != "global"
                emb = encoder.embed_images(arrays, patches=regions, dense=self.dense,
                                           resolution=self.resolution if regions else None)
                return emb.global_, student.predict_proba(concept_scores(emb, bank, self.mode).X[:, columns])
        return label

    def _compact_costs(self, encoder, sample_arrays: np.ndarray) -> dict:
        """What deploying the alternatives would cost: the CLIP image tower (+ the concept head),
        and the teacher where it runs here (its whole predict call on 16 images, per image)."""
        from infi import prg

        params, ms = prg.image_tower_cost(encoder.model, encoder.image_size)
        costs = {"tower_encoder": encoder.name, "tower_parameters": params, "tower_ms_per_image": ms}
        if self.concepts is not None:
            k, c = self.concepts.X.shape[1], len(self.class_names or ())
            costs["head_parameters"] = k * c + c
        if self.teacher is not None:
            sample = from_arrays([f"timing_{i}" for i in range(len(sample_arrays))], sample_arrays, None, None,
                                 {"kind": "timing"})
            self.teacher.predict_proba(sample)  # warm-up
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                self.teacher.predict_proba(sample)
                times.append(time.perf_counter() - t0)
            costs["teacher_ms_per_image"] = 1000 * float(np.median(times)) / len(sample)
            module = getattr(self.teacher, "model", None) or getattr(getattr(self.teacher, "_teacher", None),
                                                                       "model", None)
            if module is not None and hasattr(module, "parameters"):
                costs["teacher_parameters"] = sum(p.numel() for p in module.parameters())
        return costs

    # --- helpers -----------------------------------------------------------------------------

    def _need_dataset(self) -> ImageSet:
        if self.dataset is None and self.store is not None:
            raise SessionError("This needs the images themselves; the dataset is an embedding store (embeddings, "
                               "no pixels)")
        if self.dataset is None:
            raise SessionError("Load a dataset first")
        return self.dataset

    def _need_student(self) -> ConceptStudent:
        if self.student is None:
            raise SessionError("Distill a student first")
        return self.student

    def status(self) -> dict[str, str | None]:
        """One line per pipeline step for the sidebar: None when the step is not done."""
        return {
            "dataset": (f"{len(self.dataset)} images" if self.dataset is not None else
                        f"{len(self.store)} images in an embedding store" if self.store is not None else
                        f"{len(self.dataset_ref['ids'])} images referenced (not loaded)"
                        if self.dataset_ref else None),
            "teacher": (f"{self.teacher_name}, {len(self.class_names)} classes"
                        if self.P is not None else None),
            "concepts": (f"{self.concepts.X.shape[1]} concepts ({self.mode})"
                         if self.concepts is not None else None),
            "student": (f"{self.student.n_members} members, "
                        f"{effective_concepts(self.student.weights_):.1f} concepts per class, "
                        f"{_count(len(self.provenance) - 1, 'step')} since the fit"
                        if self.student is not None else None),
        }


def _no_pixels(i: int):
    raise SessionError("an embedding store holds embeddings, not images")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _finite(what: str, values: np.ndarray) -> None:
    if not np.isfinite(values).all():
        raise InputError(f"{what}: hold NaN or inf")


def _check_student(student: ConceptStudent, n: int, K: int, C: int) -> None:
    """Every saved array of a student against the session's sizes: a student of another width
    once loaded and then failed inside a page."""
    M = student.coef_.shape[0] if student.coef_.ndim == 3 else -1
    expected = {"coef_": (M, K, C), "intercept_": (M, C), "mean_": (K,), "scale_": (K,)}
    for name, shape in expected.items():
        value = getattr(student, name)
        if value.shape != shape or M < 1:
            raise InputError(f"student {name.strip('_')}: shape {value.shape} does not fit {K} concepts and "
                             f"{C} classes")
        _finite(f"student {name.strip('_')}", value)
    if (student.scale_ <= 0).any():
        raise InputError("student scale: must be positive")
    rows = student._fit_rows_
    if rows.ndim != 1 or rows.dtype.kind not in "iu" or (len(rows) and (rows.min() < 0 or rows.max() >= n)):
        raise InputError(f"student fit rows: must be row numbers in [0, {n})")
