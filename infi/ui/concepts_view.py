"""Concepts page components: encoder, corpus editor, region mode, extraction and browsing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from infi.concepts import REGION_MODES, build_bank, class_concept_means, patch_score_map
from infi.corpus import Corpus, clean_concepts, parse_concept_file, preset, preset_names
from infi.dense import DENSE_METHODS, PLAIN_CLIP_DEFAULT, REGISTERED_DEFAULT, default_method
from infi.encoders import DEFAULT_ENCODER
from infi.session import Session
from infi.ui import charts, state
from infi.ui.feedback import guarded, progress_status
from infi.ui.markdown import escape
from infi.ui.replacing import ask_or_run
from infi.ui.resources import encoder

ENCODERS = {
    "demo": "Demo encoder (Shapes World, offline)",
    "openai/clip-vit-base-patch32": "CLIP ViT-B/32 (downloads ~600 MB once)",
    "openai/clip-vit-base-patch16": "CLIP ViT-B/16 (downloads ~600 MB once)",
    "custom": "Another hub id or a local folder",
}
UPLOADED = "uploaded list"
STORED = "the store's list (scores made while embedding)"
HEATMAP_CONCEPTS = 30


def encoder_picker() -> str | None:
    choice = st.selectbox("Encoder", list(ENCODERS), format_func=ENCODERS.get,
                          index=state.kept_index(state.ENCODER_CHOICE, ENCODERS), **state.keeps(state.ENCODER_CHOICE))
    if choice == "custom":
        custom = st.text_input("Hub id or folder of a CLIP checkpoint", key=state.ENCODER_CUSTOM).strip()
        return custom or None
    return choice


def corpus_editor(session: Session) -> Corpus | None:
    """Preset or uploaded list, editable row by row in a data editor. The edited list and the
    last upload are kept in the session, so leaving the page and coming back loses neither."""
    default = "demo" if (session.dataset is not None and
                         session.dataset.source.get("kind") == "shapes-world") else "built-in"
    options = preset_names() + [UPLOADED]
    stored = session.store.manifest.get("corpus") if session.dataset is None and session.store is not None else None
    if stored:  # the list the store's scores were made for: its scores are used as they are
        options.append(STORED)
        default = STORED
    start = state.kept_index(state.CORPUS_CHOICE, options, options.index(default))
    choice = st.selectbox("Concepts", options, index=start, **state.keeps(state.CORPUS_CHOICE))
    base = None
    if choice == STORED:
        base = Corpus.from_dict(stored)
    elif choice == UPLOADED:
        up = st.file_uploader("A .txt (one concept per line) or .csv (concept,category)",
                              type=["txt", "csv"], key=state.CORPUS_UPLOAD, max_upload_size=8)
        kept = st.session_state.get(state.UPLOADED_CORPUS)
        if up is not None:
            with guarded(f"Reading {up.name}"):
                base = parse_concept_file(up.getvalue(), up.name)
                st.session_state[state.UPLOADED_CORPUS] = base.to_dict()
        elif kept is not None:
            base = Corpus.from_dict(kept)
            st.caption(f"Using {escape(base.name)} ({len(base)} concepts), uploaded earlier; upload another "
                       "file to replace it.")
        else:
            st.info("Upload a list of concepts to continue.")
        if base is None:
            return None
    else:
        base = preset(choice)
    key = f"{state.CORPUS_EDITOR}_{choice}_{base.name}"
    if key not in st.session_state:  # a fresh editor: start from the list as last edited
        draft = st.session_state.get(state.CORPUS_DRAFT)
        start = Corpus.from_dict(draft["corpus"]) if draft and draft["key"] == key else base
        st.session_state[state.CORPUS_BASE] = {"key": key, "corpus": start.to_dict()}
    kept_base = st.session_state.get(state.CORPUS_BASE)
    if kept_base and kept_base["key"] == key:  # the rows the editor's edits refer to
        base = Corpus.from_dict(kept_base["corpus"])
    frame = pd.DataFrame({"concept": base.concepts, "category": base.categories})
    edited = st.data_editor(frame, num_rows="dynamic", key=key, hide_index=True,
                            width="stretch", height=240,
                            column_config={"concept": st.column_config.TextColumn(required=True)})
    corpus = None
    with guarded("Checking the concept list"):
        rows = edited.dropna(subset=["concept"])
        names = clean_concepts([str(c) for c in rows["concept"]])
        typed: dict[str, str] = {}  # the category on each row as cleaned names key it (first row wins)
        for concept, category in zip(rows["concept"], rows["category"]):
            key_name = " ".join(str(concept).strip().lower().split())
            if isinstance(category, str) and category.strip():
                typed.setdefault(key_name, " ".join(category.split()))
        corpus = base.with_concepts(names, [typed.get(n, "custom") for n in names])
        st.session_state[state.CORPUS_DRAFT] = {"key": key, "corpus": corpus.to_dict()}
    if corpus is not None:
        st.caption(f"{len(corpus)} concepts; each is scored with the prompt"
                   f"{'s' if len(corpus.templates) > 1 else ''} "
                   + " · ".join(f"“{t.format('…')}”" for t in corpus.templates))
    return corpus


def extraction(session: Session, encoder_id: str | None, corpus: Corpus | None) -> None:
    on_store = session.dataset is None and session.store is not None
    if on_store:
        made = session.store.manifest
        st.caption("Global scores of any concept list come from the stored embeddings. " + (
            f"The store also holds {made['mode']} scores of its own list ({len(made['concepts'])} concepts), "
            f"used as they are with \"{STORED}\" (or part of it) in {made['mode']} mode; other region "
            "scores need embedding again." if made.get("concepts") else
            "Region modes need scores made while embedding (`infi embed --scores --mode segments`)."))
    mode = st.radio("Regions", REGION_MODES, horizontal=True, index=state.kept_index(state.REGION_MODE, REGION_MODES),
                    **state.keeps(state.REGION_MODE),
                    help="global: the whole image; patches: the best patch; segments: the best of "
                         "a few k-means regions of patches")
    options = list(DENSE_METHODS)
    default = options.index(default_method(encoder_id))
    dense = st.selectbox("Region method", options, index=state.kept_index(state.DENSE_METHOD, options, default),
                         **state.keeps(state.DENSE_METHOD), disabled=mode == "global" or on_store,
                         help=f"How patch embeddings are made for region modes. Plain CLIP: "
                              f"{PLAIN_CLIP_DEFAULT} (the best training-free method in the literature); the "
                              f"demo encoder: {REGISTERED_DEFAULT} (it was trained for it). See the README.")
    sizes = [NATIVE, *RESOLUTIONS]
    size = st.selectbox("Region resolution", sizes, index=state.kept_index(state.RESOLUTION, sizes, 0),
                        **state.keeps(state.RESOLUTION), disabled=mode == "global" or on_store,
                        help="A finer patch grid for small parts of photos: the position embeddings are "
                             "interpolated. Cost measured on a 2-core CPU (ViT-B/32, naclip): 320 px "
                             "2.2x the time of 224, 448 px 4.3x.")
    ready = encoder_id is not None and corpus is not None
    encoder_fit_warning(session, encoder_id)

    def run() -> None:
        status, report = progress_status("Embedding images and scoring concepts…")
        with guarded("Extracting concepts", "Offline? Choose the demo encoder or a local folder."):
            encoder(encoder_id)  # load once, shared (a model, not user data)
            had_student = session.student is not None
            cleared = session.set_encoder(encoder_id)
            session.extract_concepts(corpus, mode, report, dense=dense if mode != "global" else None,
                                     resolution=None if size == NATIVE else int(size))
            if had_student and "student and provenance" not in cleared:
                cleared.append("student and provenance")
            status.update(label="Concepts extracted", state="complete")
            state.notify(f"{session.concepts.X.shape[1]} concept scores for {session.concepts.X.shape[0]} "
                         "images." + (" Cleared: " + ", ".join(cleared) + "." if cleared else ""))
            st.rerun()
        status.update(label="Extraction failed", state="error")

    if st.button("Extract concepts", type="primary", disabled=not ready, key=state.BTN_EXTRACT):
        ask_or_run(session, "Extracting concepts again", run)


def concept_table(session: Session) -> None:
    matrix = session.concepts
    cats = dict(zip(session.corpus.concepts, session.corpus.categories)) if session.corpus else {}
    frame = pd.DataFrame({"concept": matrix.names,
                          "category": [cats.get(n, "") for n in matrix.names],
                          "mean score": matrix.X.mean(0), "max score": matrix.X.max(0)})
    query = st.text_input("Search concepts", key=state.CONCEPT_SEARCH, placeholder="e.g. grass")
    if query:
        frame = frame[frame["concept"].str.contains(query.strip().lower(), regex=False)]
    if frame.empty:
        st.info(f"No concept contains “{escape(query)}”.")
    else:
        st.dataframe(frame.sort_values("mean score", ascending=False), hide_index=True, width="stretch",
                     height=260, column_config={
                         "mean score": st.column_config.ProgressColumn(
                             min_value=0.0, max_value=float(matrix.X.max() or 1), format="%.3f"),
                         "max score": st.column_config.NumberColumn(format="%.3f")})


def heatmap(session: Session) -> None:
    matrix = session.concepts
    assigned = session.labels if session.labels is not None and (session.labels >= 0).all() else (
        session.P.argmax(1) if session.P is not None else None)
    if assigned is None or session.class_names is None:
        st.caption("The class × concept heatmap appears once there are labels or teacher outputs.")
        return
    means = class_concept_means(matrix.X, assigned, len(session.class_names))
    keep = np.argsort(-means.std(0))[:HEATMAP_CONCEPTS]
    st.altair_chart(charts.class_concept_heatmap(means[:, keep], session.class_names,
                                                 [matrix.names[j] for j in keep],
                                                 title="Mean concept score per class (most varying concepts)"),
                    width="stretch")


def top_images(session: Session) -> None:
    names = list(session.concepts.names)
    concept = st.selectbox("Top images for concept", names, key=state.CONCEPT_PICK)
    idx = session.concepts.top_images(concept, 12)
    shown = [(int(i), session.image(int(i))) for i in idx]
    shown = [(i, im) for i, im in shown if im is not None]
    if not shown:
        st.caption("The images' paths are not readable on this machine, so no thumbnail is shown. Top ids: "
                   + ", ".join(escape(session.image_ids()[int(i)]) for i in idx[:6]))
        return
    st.image([im for _, im in shown],
             caption=[f"{session.concepts.X[i, names.index(concept)]:.3f}" for i, _ in shown], width=84)


def image_inspector(session: Session) -> None:
    data = session.dataset
    i = int(st.number_input("Image index", 0, len(data) - 1, 0, key=state.IMAGE_PICK))
    top = session.concepts.top_concepts(i, 8)
    concept = st.selectbox("Overlay for concept", [n for n, _ in top] + [
        n for n in session.concepts.names if n not in {t for t, _ in top}], key=state.OVERLAY_CONCEPT)
    c1, c2 = st.columns(2)
    image = np.asarray(data.image(i))
    with guarded("Computing the patch overlay"):
        enc = encoder(session.encoder_id)
        emb = enc.embed_images([data.image(i)], patches=True, dense=session.dense, resolution=session.resolution)
        bank = build_bank(enc, session.corpus.with_concepts([concept]))
        score_map = patch_score_map(emb.patches[0], bank, concept, emb.grid)
        shown = np.asarray(data.image(i).resize((224, 224)))
        c1.image(charts.overlay(shown, score_map), caption=f"“{concept}” by patch (red = high)",
                 width=260)
    c2.dataframe(pd.DataFrame(top, columns=["concept", "score"]), hide_index=True)
    del image


NATIVE = "the checkpoint's own"
RESOLUTIONS = (320, 448)  # multiples of 16 and 32: every ViT-B patch size


def encoder_fit_warning(session: Session, encoder_id: str | None) -> None:
    """Said before extraction: the demo encoder knows Shapes World only."""
    kind = (session.dataset.source or {}).get("kind") if session.dataset is not None else None
    if session.dataset is None and session.store is not None:
        return  # a store's encoder is fixed: advice to choose another cannot be followed
    if encoder_id == DEFAULT_ENCODER and kind != "shapes-world":
        st.warning("The demo encoder was trained on Shapes World only (shapes, colours, fills, sizes, "
                   "backgrounds). On other images its concept scores mean little. Choose a CLIP checkpoint "
                   "above, e.g. `openai/clip-vit-base-patch32` (downloaded once, about 600 MB), or a "
                   "local folder holding one.", icon=":material/warning:")


def uninformative_concepts(session: Session) -> None:
    """After extraction: concepts with the same score on every image, and an offer to drop them."""
    flat = session.concepts.uninformative()
    if not flat:
        return
    box = st.container(border=True)
    box.warning(f"{len(flat)} of {len(session.concepts.names)} concepts score the same on every image, "
                f"so no student can use them: {escape(', '.join(flat[:12]))}{' …' if len(flat) > 12 else ''}. "
                "A concept the encoder does not know, or an encoder that does not fit these images, "
                "does this.", icon=":material/warning:")
    if len(flat) < len(session.concepts.names) and box.button(f"Drop these {len(flat)} concepts",
                                                              key=state.BTN_DROP_FLAT):
        def run() -> None:
            with guarded("Dropping concepts"):
                cleared = session.drop_concepts(flat)
                state.notify(f"Dropped {len(flat)} concepts that scored the same on every image."
                             + (" Cleared: " + ", ".join(cleared) + "." if cleared else ""))
                st.rerun()

        ask_or_run(session, "Dropping concepts", run)
