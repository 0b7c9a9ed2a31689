"""Data & teacher page components: choose a dataset, look at it, run a teacher, summarise it."""

from __future__ import annotations

import numpy as np
import streamlit as st

from infi import data as data_mod
from infi import metrics, teachers
from infi.data import ImageSet
from infi.demo.scenarios import SCENARIO_NAMES, teacher_name
from infi.demo.scenarios import scenario as get_scenario
from infi.demo.world import SPLITS, WORLD_SOURCE, from_world, generate_world
from infi.encoders import DEFAULT_ENCODER
from infi.limits import Budget
from infi.session import Session
from infi.store import open_store
from infi.ui import charts, state
from infi.ui.feedback import guarded, progress_status, progress_step
from infi.ui.markdown import escape
from infi.ui.replacing import ask_or_run
from infi.ui.resources import allowed_reference, encoder, registered_teacher

SOURCES = ("Shapes World (offline demo)", "ZIP in ImageFolder layout", "Images + CSV of labels",
           "Local folder", "Precomputed embeddings (a store from infi embed)")
TEACHERS = ("Demo teacher (Shapes World CNN)", "Predictions file", "TorchScript file (legacy)",
            "Transformers checkpoint", "CLIP zero-shot", "ONNX file")
THUMBS_PER_CLASS = 6


def dataset_picker(session: Session) -> None:
    """Source choice and loading; a new dataset clears results that depended on the old one."""
    sources = SOURCES[:3] if state.hosted() else SOURCES
    source = st.radio("Source", sources, index=state.kept_index(state.DATA_SOURCE, sources),
                      horizontal=True, **state.keeps(state.DATA_SOURCE))
    loaded: tuple[ImageSet, dict] | None = None
    if source == SOURCES[0]:
        scenario = st.selectbox("Scenario (the shortcut planted in the biased split)", SCENARIO_NAMES,
                                index=state.kept_index(state.WORLD_SCENARIO, SCENARIO_NAMES),
                                **state.keeps(state.WORLD_SCENARIO),
                                help="Each scenario has its own demo teacher, trained on its biased split. "
                                     "For a class, the Classroom exercise page hides which one is loaded.")
        st.caption(f"Planted in the biased split: {escape(get_scenario(scenario).title.lower())}.")
        c1, c2, c3, c4 = st.columns(4)
        split = c1.selectbox("Split", SPLITS, index=state.kept_index(state.WORLD_SPLIT, SPLITS),
                             **state.keeps(state.WORLD_SPLIT),
                             help="biased: the scenario's shortcut is planted with probability p; "
                                  "shifted: every attribute is drawn independently")
        most = min(20000, Budget.current().max_world_images)
        n = c2.number_input("Images", 50, most, min(state.kept(state.WORLD_SIZE, 1200), most), 50,
                            **state.keeps(state.WORLD_SIZE), help=f"At most {most:,} here (the budget's "
                            "max_world_images; see Limits and safety in the README)")
        seed = c3.number_input("Seed", 0, 2**31 - 1, state.kept(state.WORLD_SEED, 7), **state.keeps(state.WORLD_SEED))
        p = c4.slider("Shortcut p", 0.0, 1.0, state.kept(state.WORLD_P, 0.9), 0.05, disabled=split != "biased",
                      **state.keeps(state.WORLD_P))
        with_shifted = st.checkbox("Also load a shifted split to evaluate on (recommended)", True,
                                   key=state.WORLD_SHIFTED)
        if st.button("Load Shapes World", type="primary", key=state.BTN_LOAD_WORLD):
            with guarded("Generating Shapes World"):
                world = generate_world(int(n), split=split, p=float(p), seed=int(seed), scenario=scenario)
                extra = {}
                if with_shifted:
                    extra["shifted"] = from_world(generate_world(max(200, int(n) // 2), split="shifted",
                                                                 seed=int(seed) + 1, scenario=scenario))
                loaded = (from_world(world), extra)
    elif source == SOURCES[1]:
        up = st.file_uploader("ZIP with one folder per class (class_name/image.png)", type=["zip"],
                              key=state.ZIP_UPLOAD, max_upload_size=state.upload_mb("max_total_bytes"))
        if up is not None and st.button("Load ZIP", type="primary", key=state.BTN_LOAD_ZIP):
            with guarded(f"Reading {up.name}", "Upload a ZIP whose folders are the class names."):
                with progress_step("Checking every image of the ZIP") as report:
                    loaded = (data_mod.from_zip(up.getvalue(), progress=report), {})
    elif source == SOURCES[2]:
        ups = st.file_uploader("Images", accept_multiple_files=True, key=state.IMAGES_UPLOAD,
                               type=[s[1:] for s in data_mod.IMAGE_SUFFIXES],
                               max_upload_size=state.upload_mb("max_file_bytes"))
        csv = st.file_uploader("CSV with columns image,label (label optional)", type=["csv"],
                               key=state.CSV_UPLOAD, max_upload_size=state.upload_mb("max_prediction_bytes"))
        if ups and st.button("Load images", type="primary", key=state.BTN_LOAD_FILES):
            with guarded("Reading the images", "Check the CSV's 'image' column names the uploaded files."):
                files = [(u.name, u.getvalue()) for u in ups]
                with progress_step("Checking every image") as report:
                    loaded = (data_mod.from_files(files, csv.getvalue() if csv else None, progress=report), {})
    elif source == SOURCES[3]:
        path = st.text_input("Folder on this machine", key=state.FOLDER_PATH,
                             placeholder="/data/my_images (class sub-folders, or a flat folder)")
        if path and st.button("Load folder", type="primary", key=state.BTN_LOAD_FOLDER):
            with guarded(f"Reading {path}"):
                with progress_step("Reading and checking the folder's images") as report:
                    loaded = (data_mod.from_folder(path, progress=report), {})
    else:
        store_picker(session)
    if loaded is not None:
        reattached = session.reattaches(loaded[0])

        def use_it() -> None:
            cleared = session.set_dataset(*loaded)
            msg = f"Loaded {len(loaded[0])} images."
            if reattached:
                msg = (f"These are the {len(loaded[0])} images of the loaded session: teacher outputs, "
                       "concepts and the student are kept.")
            elif cleared:
                msg += " Cleared: " + ", ".join(cleared) + " (they belonged to the previous dataset)."
            state.notify(msg)
            st.rerun()

        if reattached:  # the loaded session's own images: nothing is replaced
            use_it()
        else:
            ask_or_run(session, "Loading a new dataset", use_it)


def store_picker(session: Session) -> None:
    """Open an embedding store: its embeddings become the dataset; no image is loaded."""
    st.caption("A store is a folder written by `infi embed` (in this process or on a Ray cluster): Parquet "
               "shards of ids and CLIP embeddings, and a manifest. Millions of images fit, because no pixel is "
               "loaded; the teacher is a predictions file keyed by the same ids, or CLIP zero-shot. See \"More "
               "images than one machine\" in the README.")
    path = st.text_input("Store folder on this machine", key=state.STORE_PATH,
                         placeholder="/data/imagenet-store (holds manifest.json and part-*.parquet)")
    if path and st.button("Open store", type="primary", key=state.BTN_OPEN_STORE):
        store = None
        with guarded(f"Opening {path}", "A store is the folder `infi embed --out` wrote (it holds manifest.json)."):
            with progress_step("Opening the store") as report:
                store = open_store(path, progress=report)
        if store is None:
            return
        keeps_results = session.reattaches_store(store)

        def use_it() -> None:
            cleared = session.open_store(store)
            if keeps_results:
                msg = (f"This is the store of the loaded session ({len(store):,} images): teacher outputs, concepts "
                       "and the student are kept.")
            else:
                msg = f"Opened a store of {len(store):,} images embedded with {store.encoder}."
                if cleared:
                    msg += " Cleared: " + ", ".join(cleared) + " (they belonged to the previous dataset)."
            state.notify(msg)
            st.rerun()

        if keeps_results:
            use_it()
        else:
            ask_or_run(session, "Opening an embedding store", use_it)


def store_overview(session: Session) -> None:
    """What the store holds, and thumbnails where its image paths are readable here."""
    store = session.store
    m = store.manifest
    st.subheader("Dataset: an embedding store")
    cols = st.columns(4)
    cols[0].metric("Images", f"{len(store):,}")
    cols[1].metric("Classes", len(store.class_names or ()) or "—")
    cols[2].metric("Labelled", f"{int((store.labels >= 0).sum()):,}" if store.labels is not None else 0)
    cols[3].metric("Skipped files", f"{m.get('skipped_count', 0):,}")
    scores = (f"concept scores for {len(m['concepts'])} concepts ({m['mode']})" if m.get("concepts")
              else "no concept scores (they are computed from the embeddings on the Concepts page)")
    st.caption(f"Folder {escape(str(store.folder))} · encoder {escape(store.encoder)} · {m['dim']}-dimensional "
               f"embeddings · {scores} · written by the {escape(str(m.get('engine')))} engine"
               + (f" at {m['images_per_second']:,.1f} images/s" if m.get("images_per_second") else ""))
    if m.get("skipped"):
        with st.expander(f"{m.get('skipped_count', 0):,} file(s) were skipped while embedding"):
            st.dataframe([{"file": s["id"], "reason": s["reason"]} for s in m["skipped"]], hide_index=True)
    if store.labels is not None and store.class_names:
        st.altair_chart(charts.class_counts(store.labels, store.class_names), width="stretch")
    if not store.readable:
        st.info("The images' paths are not readable on this machine, so no thumbnail is shown; everything "
                "else works from the embeddings.")
        return
    thumbnails(store.labels, store.class_names, len(store), store.image)


def detached_dataset_notice(session: Session) -> None:
    """A session loaded from a bundle of uploaded images: say what is kept and how to see them."""
    ref = session.dataset_ref
    source = (ref.get("source") or {}).get("kind", "uploaded images")
    st.info(f"This session was loaded from a bundle. Its {len(ref['ids'])} images ({escape(source)}, content "
            f"hash {str(ref.get('content_hash'))[:12]}…) are referenced, not stored in it; the teacher "
            "outputs, concepts, student and provenance are all here and the other pages work. To see "
            "the images again, load the same images above: everything is kept. Loading different "
            "images starts a new session.")


def dataset_overview(session: Session) -> None:
    data = session.dataset
    st.subheader("Dataset")
    cols = st.columns(4)
    cols[0].metric("Images", len(data))
    cols[1].metric("Classes", len(data.class_names or ()) or "—")
    cols[2].metric("Labelled", int((data.labels >= 0).sum()) if data.labels is not None else 0)
    cols[3].metric("Skipped files", len(data.skipped))
    if data.skipped:
        with st.expander(f"{len(data.skipped)} file(s) were skipped"):
            st.dataframe([{"file": s.name, "reason": s.reason} for s in data.skipped], hide_index=True)
    for name, e in session.eval_sets.items():
        st.caption(f"Evaluation set “{escape(name)}”: {len(e.images)} images.")
    if data.labels is not None and data.class_names:
        st.altair_chart(charts.class_counts(data.labels, data.class_names), width="stretch")
    thumbnails(data.labels, data.class_names, len(data), data.image)


def thumbnails(labels, class_names, n: int, image) -> None:
    """A few images per class (or the first 24 without labels); ``image(row)`` may return None
    (a store's unreadable path), and such rows are left out."""
    if labels is None or not class_names:
        groups = [(None, range(min(24, n)))]
    else:
        groups = [(name, np.flatnonzero(labels == c)[:THUMBS_PER_CLASS]) for c, name in enumerate(class_names)]
    for name, rows in groups:
        shown = [im for im in (image(int(i)) for i in rows) if im is not None]
        if shown:
            if name is not None:
                st.markdown(f"**{escape(name)}**")
            st.image(shown, width=72)


def world_scenario(session: Session) -> str:
    """The scenario of a loaded Shapes World (``background`` for any other dataset)."""
    source = session.dataset.source if session.dataset is not None else {}
    return str(source.get("scenario", "background")) if source.get("kind") == WORLD_SOURCE else "background"


def teacher_picker(session: Session) -> None:
    """Every choice becomes a ``teachers.from_spec`` reference, as on the command line."""
    st.subheader("Teacher")
    on_store = session.dataset is None and session.store is not None
    kinds = (TEACHERS[1], TEACHERS[4]) if on_store else TEACHERS
    kind = st.radio("Teacher", kinds, index=state.kept_index(state.TEACHER_KIND, kinds), horizontal=True,
                    **state.keeps(state.TEACHER_KIND))
    if on_store:
        st.caption("An embedding store holds no pixels, so the teacher is its outputs keyed by the store's ids, "
                   "or CLIP zero-shot on the stored embeddings.")
    teacher = None
    classes = session.dataset.class_names if session.dataset is not None else session.class_names
    if kind == TEACHERS[0]:
        scenario = world_scenario(session)
        if scenario == "background":
            st.caption("A small CNN trained on the biased split of Shapes World: it partly relies on "
                       "the background shortcut.")
        else:
            st.caption(f"A small CNN trained on the biased split of the “{escape(get_scenario(scenario).title)}” "
                       f"scenario (registered as {teacher_name(scenario)}): it leans on that shortcut.")
        if st.button("Run the demo teacher", type="primary", key=state.BTN_TEACHER):
            with guarded("Loading the demo teacher"):
                teacher = registered_teacher(teacher_name(scenario))
    elif kind == TEACHERS[1]:
        up = st.file_uploader("Predictions (.csv / .parquet with an 'id' column and one column per "
                              "class, or .npy in dataset order)", type=["csv", "parquet", "npy"],
                              key=state.PREDICTIONS_UPLOAD, max_upload_size=state.upload_mb("max_prediction_bytes"))
        st.caption(teachers.ID_FORMAT.replace("→", "  \n"))
        if session.dataset is not None or on_store:
            st.caption("This dataset's first ids: " + ", ".join(escape(i) for i in session.image_ids()[:3]))
        values = st.radio("The values are", ("auto", "probabilities", "logits"), horizontal=True,
                          key=state.PREDICTIONS_KIND,
                          help="auto: probabilities when every value lies in [0, 1], else logits (said after)")
        if up is not None and st.button("Use these predictions", type="primary", key=state.BTN_TEACHER):
            with guarded(f"Reading {up.name}"):
                teacher = teachers.from_spec("predictions:", classes, data=up.getvalue(),
                                             filename=up.name, kind=values)
    elif kind == TEACHERS[2]:
        st.warning(teachers.TORCHSCRIPT_WARNING, icon=":material/warning:")
        up = st.file_uploader("TorchScript model (.pt)", type=["pt", "pth", "ts"], key=state.TORCHSCRIPT_UPLOAD,
                              max_upload_size=state.upload_mb("max_file_bytes"))
        size = st.number_input("Input size (pixels)", 16, 1024, 224, key=state.TORCHSCRIPT_SIZE)
        if up is not None and st.button("Run the TorchScript teacher", type="primary", key=state.BTN_TEACHER):
            with guarded(f"Loading {up.name}"):
                teacher = teachers.from_spec("torchscript:", classes, data=up.getvalue(),
                                             filename=up.name, image_size=int(size))
    elif kind == TEACHERS[3]:
        model_id = st.text_input("Hub id or local folder", key=state.HF_MODEL_ID,
                                 placeholder="google/vit-base-patch16-224")
        if model_id and st.button("Run the classifier", type="primary", key=state.BTN_TEACHER):
            with guarded(f"Loading {model_id}", "Offline? Use a local folder or a predictions file."):
                teacher = teachers.from_spec(f"hf:{allowed_reference(model_id, registered=())}", classes)
    elif kind == TEACHERS[5]:
        up = st.file_uploader("ONNX image classifier (.onnx)", type=["onnx"], key=state.ONNX_UPLOAD,
                              max_upload_size=state.upload_mb("max_file_bytes"))
        c1, c2 = st.columns(2)
        size = c1.number_input("Input size (pixels, when the model does not state it)", 16, 1024, 224,
                               key=state.ONNX_SIZE)
        normalize = c2.checkbox("Normalize with ImageNet mean and std", True, key=state.ONNX_NORMALIZE,
                                help="Off for models that normalize inside, like Infi's own exports")
        st.caption("Input: RGB [batch, 3, H, W] or [batch, H, W, 3] in [0, 1]; output: one logit per "
                   "class, in the dataset's class order.")
        if up is not None and st.button("Run the ONNX teacher", type="primary", key=state.BTN_TEACHER):
            with guarded(f"Loading {up.name}"):
                teacher = teachers.from_spec("onnx:", classes, data=up.getvalue(), filename=up.name,
                                             image_size=int(size), normalize=bool(normalize))
    else:
        names = st.text_input("Class names (comma-separated)", ", ".join(classes or ()), key=state.ZS_CLASSES)
        templates = st.text_area("Prompt templates (one per line, {} is the class)",
                                 "\n".join(teachers.ZERO_SHOT_TEMPLATES), key=state.ZS_TEMPLATES)
        enc_name = session.encoder_id or DEFAULT_ENCODER
        st.caption(f"Uses the store's encoder, {escape(enc_name)}, on the stored embeddings." if on_store else
                   f"Uses the encoder chosen on the Concepts page (now: {escape(enc_name)}).")
        if st.button("Run CLIP zero-shot", type="primary", key=state.BTN_TEACHER):
            with guarded("Setting up zero-shot"):
                temps = tuple(t.strip() for t in templates.splitlines() if t.strip())
                teacher = teachers.from_spec(f"zeroshot:{enc_name}", classes, class_names=names,
                                             templates=temps, encoder_loader=encoder)
    if teacher is not None:
        run_teacher(session, teacher)


def run_teacher(session: Session, teacher) -> None:
    """Run ``teacher`` on the dataset with progress (asking first when it would drop a tuned student)."""
    def run() -> None:
        status, report = progress_status(f"Running {teacher.name}…")
        with guarded(f"Running {teacher.name}"):
            cleared = session.run_teacher(teacher, report)
            status.update(label=f"{escape(teacher.name)}: done", state="complete")
            state.notify(f"Teacher outputs ready for {len(session.P)} images."
                         + (" Replaced: " + ", ".join(cleared) + " of the previous teacher." if cleared else "")
                         + "".join(f" Note: {n}." for n in session.teacher_notes))
            st.rerun()
        status.update(label=f"{escape(teacher.name)}: failed", state="error")

    ask_or_run(session, f"Running {teacher.name}", run)


def teacher_summary(session: Session) -> None:
    st.markdown(f"**{escape(session.teacher_name)}** on {len(session.P)} images, "
                f"{len(session.class_names)} classes.")
    cols = st.columns(3)
    acc = metrics.accuracy(session.P, session.labels)
    cols[0].metric("Teacher accuracy", f"{acc:.1%}" if acc is not None else "no labels")
    for i, (name, e) in enumerate(session.eval_sets.items(), 1):
        if e.P is not None and i < 3:
            acc_e = metrics.accuracy(e.P, session.labels_for(e.images, session.class_names))
            cols[i].metric(f"Accuracy on {escape(name)}", f"{acc_e:.1%}" if acc_e is not None else "—")
    st.altair_chart(charts.confidence_histogram(session.P), width="stretch")
