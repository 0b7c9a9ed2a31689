"""Every ``st.session_state`` key the app uses, in one place, and the accessors built on them.

Each browser session owns one ``infi.session.Session`` (its data never enters a cache shared
across users); models are shared through ``st.cache_resource`` in ``infi.ui.resources``.
"""

from __future__ import annotations

import os

import streamlit as st

from infi.cache import ArrayCache
from infi.session import Session

SESSION = "infi_session"
NOTICE = "infi_notice"  # one message shown once after a rerun (e.g. what a change cleared)

# Data page
WORLD_SPLIT = "world_split"
WORLD_SIZE = "world_size"
WORLD_SEED = "world_seed"
WORLD_P = "world_p"
WORLD_SHIFTED = "world_with_shifted"
WORLD_SCENARIO = "world_scenario"
DATA_SOURCE = "data_source"
ZIP_UPLOAD = "zip_upload"
IMAGES_UPLOAD = "images_upload"
CSV_UPLOAD = "csv_upload"
FOLDER_PATH = "folder_path"
STORE_PATH = "store_path"
TEACHER_KIND = "teacher_kind"
PREDICTIONS_UPLOAD = "predictions_upload"
PREDICTIONS_KIND = "predictions_kind"
TORCHSCRIPT_UPLOAD = "torchscript_upload"
TORCHSCRIPT_SIZE = "torchscript_size"
HF_MODEL_ID = "hf_model_id"
ZS_CLASSES = "zero_shot_classes"
ZS_TEMPLATES = "zero_shot_templates"

# Concepts page
ENCODER_CHOICE = "encoder_choice"
ENCODER_CUSTOM = "encoder_custom"
CORPUS_CHOICE = "corpus_choice"
CORPUS_UPLOAD = "corpus_upload"
CORPUS_EDITOR = "corpus_editor"
DENSE_METHOD = "dense_method"
RESOLUTION = "region_resolution"
REGION_MODE = "region_mode"
CONCEPT_SEARCH = "concept_search"
CONCEPT_PICK = "concept_pick"
IMAGE_PICK = "image_pick"
OVERLAY_CONCEPT = "overlay_concept"

# Distill page
METHOD = "distill_method"
MEMBERS = "student_members"
ALPHA = "student_alpha"
NEC = "student_nec"
SPARSITY = "student_sparsity"
VAL_SHARE = "student_validation_share"
CONFUSION_SELECT = "confusion_select"
INFLUENCE_CLASS = "influence_class"
LAST_CELL = "last_confusion_cell"
INFLUENCE_SELECT = "influence_select"
IMAGE_SELECT = "image_select"

# Fine-tune page
TUNE_CLASS = "tune_class"
WEIGHT_EDITOR = "weight_editor"
GROUP_EDITOR = "group_editor"
RESTORE_PICK = "restore_pick"
EDITOR_BASES = "editor_bases"  # {editor key: the rows it was created with}, stable while it lives
PENDING = "pending_edits"  # {(class label, concept or "group:<name>"): {kind, scale, magnitude}}
EDIT_VERSION = "edit_version"  # bumped when the table's rows change meaning (apply, restore, clear)
PROBLEMS = "problems"  # {place: {"message", "context"}}: why a step failed, shown while its inputs stay
HOLD_ON = "hold_others_on"
HOLD_BAND = "hold_others_band"

# Sidebar
BUNDLE_UPLOAD = "bundle_upload"

# Exercise page
EXERCISE_PICK = "exercise_pick"
EXERCISE_VIEW = "exercise_view"  # {dataset content hash: {"tries", "solved", "revealed", "last", "preview"}}
EXERCISE_AUTOSTARTED = "exercise_autostarted"  # a ?exercise= link starts an exercise once per browser session
DIAGNOSIS_FORM = "diagnosis_form"
DIAGNOSIS_CLASS = "diagnosis_class"
DIAGNOSIS_ANSWER = "diagnosis_answer"


CORPUS_DRAFT = "corpus_draft"  # {"key": editor key, "corpus": Corpus.to_dict()}: the edited list
CORPUS_BASE = "corpus_base"  # the rows the live corpus editor was created with
UPLOADED_CORPUS = "uploaded_corpus"  # the last uploaded concept list, parsed (Corpus.to_dict())
CONFIRMING = "confirming"  # an open question: {"what": ..., "run": the step to run on "Replace it"}
PREVIOUS = "previous_session"  # the session a replacing step set aside, restorable
AUTOSAVED = "autosaved_fingerprint"  # what the last autosave held, to save only on change
AUTOSAVE_DISMISSED = "autosave_dismissed"


KEPT = "kept:"  # prefix of the plain keys that remember settings across page switches


def remember(key: str) -> None:
    """on_change of a settings widget: keep its value under a plain key. Streamlit drops the
    state of widgets that a page does not draw, so a page switch would reset the widget."""
    st.session_state[KEPT + key] = st.session_state[key]


def kept(key: str, default):
    """The value a settings widget starts with: the person's last choice, else ``default``."""
    return st.session_state.get(KEPT + key, default)


def kept_index(key: str, options, default: int = 0) -> int:
    """``kept`` for widgets that take an index (selectbox, radio)."""
    value = st.session_state.get(KEPT + key)
    options = list(options)
    return options.index(value) if value in options else default


def keeps(key: str) -> dict:
    """The keyword arguments that make a widget remember its value: key, on_change, args."""
    return {"key": key, "on_change": remember, "args": (key,)}


def get_session() -> Session:
    """This browser session's pipeline, created on first use (memory-only cache)."""
    if SESSION not in st.session_state:
        # One visitor's arrays: bounded in bytes, lower on a shared server.
        st.session_state[SESSION] = Session(cache=ArrayCache(None, max_items=8,
                                                             max_bytes=(128 if hosted() else 512) * 1024**2))
    return st.session_state[SESSION]


def replace_session(session: Session) -> None:
    st.session_state[SESSION] = session


def notify(message: str) -> None:
    """Keep a message for the next run (st.rerun would otherwise drop it). Plain text: it is
    shown escaped, so names a person chose cannot inject markdown."""
    st.session_state[NOTICE] = message


def pop_notice() -> str | None:
    return st.session_state.pop(NOTICE, None)


def upload_mb(limit: str) -> int:
    """The file uploader's size cap in MB for a budget limit (Streamlit refuses bigger files
    before they reach the server's memory)."""
    from infi.limits import MB, Budget

    return max(1, -(-getattr(Budget.current(), limit) // MB))


def hosted() -> bool:
    """On a hosted deployment local folders are hidden: set INFI_HOSTED=1 (or in secrets)."""
    flag = os.environ.get("INFI_HOSTED", "")
    if not flag:
        try:
            flag = str(st.secrets.get("INFI_HOSTED", ""))
        except Exception:  # noqa: BLE001 - no secrets file: not hosted
            flag = ""
    return flag.lower() in ("1", "true", "yes")

# Buttons (keys make them addressable in tests and stable across reruns)
BTN_LOAD_WORLD = "btn_load_world"
BTN_LOAD_ZIP = "btn_load_zip"
BTN_LOAD_FILES = "btn_load_files"
BTN_LOAD_FOLDER = "btn_load_folder"
BTN_OPEN_STORE = "btn_open_store"
BTN_TEACHER = "btn_run_teacher"
BTN_EXTRACT = "btn_extract"
BTN_DISTILL = "btn_distill"
ONNX_UPLOAD = "onnx_upload"
ONNX_SIZE = "onnx_size"
ONNX_NORMALIZE = "onnx_normalize"
BTN_DROP_FLAT = "btn_drop_flat"
BTN_APPLY = "btn_apply"
BTN_RESTORE = "btn_restore"
BTN_UNDO = "btn_undo"
BTN_CONFIRM_REPLACE = "btn_confirm_replace"
BTN_CANCEL_REPLACE = "btn_cancel_replace"
BTN_BRING_BACK = "btn_bring_back"
BTN_RESTORE_AUTOSAVE = "btn_restore_autosave"
BTN_DISMISS_AUTOSAVE = "btn_dismiss_autosave"
BTN_RESTORE_KEPT = "btn_restore_kept"
BTN_CLEAR_PENDING = "btn_clear_pending"
BTN_LOAD_BUNDLE = "btn_load_bundle"
BTN_START_EXERCISE = "btn_start_exercise"
BTN_REVEAL = "btn_reveal"
BTN_APPLY_REPAIR = "btn_apply_repair"
QUICK_CONCEPT = "quick_concept"
QUICK_ACTION = "quick_action"
QUICK_SCALE = "quick_scale"
BTN_QUICK = "btn_quick_apply"
PRG_EPOCHS = "prg_epochs"
PRG_ARCH = "prg_arch"
PRG_LR = "prg_lr"
PRG_BATCH = "prg_batch"
PRG_WEIGHTS = "prg_weights"
PRG_TAU_EDGE = "prg_tau_edge"
PRG_TAU_REL = "prg_tau_relation"
PRG_CLASSES = "prg_classes"
BTN_PRG = "btn_prg"
COMPACT_SOURCE = "compact_source"


def compact_method_key(source: str) -> str:
    """The compact model's method, kept per source (KD suits the student, PRG zero-shot)."""
    return f"compact_method_{source}"


def compact_views_key(source: str) -> str:
    return f"compact_views_{source}"


def quick_concept_key(class_name: str) -> str:
    """The quick edit's concept select, one per class (each opens on its class's top concept)."""
    return f"{QUICK_CONCEPT}_{class_name}"


def pending() -> dict:
    """The Fine-tune page's pending edits, keyed by (class, concept or group)."""
    return st.session_state.setdefault(PENDING, {})


def set_pending(edits: dict) -> None:
    st.session_state[PENDING] = edits


def clear_pending() -> None:
    """Forget pending edits and start fresh editor widgets (their row positions are stale)."""
    st.session_state[PENDING] = {}
    clear_problems()
    bump_edit_version()


def editor_base(key: str, make):
    """The rows a data editor shows, fixed while the widget lives (its key is in the session):
    if the rows changed under the browser's edits, the browser would drop an edit equal to the
    new row and send that as a new event, racing the person's next click (an Apply was lost so)."""
    bases = st.session_state.setdefault(EDITOR_BASES, {})
    if key not in st.session_state or key not in bases:
        bases[key] = make()
    return bases[key]


def set_problem(place: str, message: str, context: object) -> None:
    """Why a step failed, kept with the inputs it failed on (``context``): a rerun right after a
    click (the browser often sends one) must not wipe the message while those inputs stay."""
    st.session_state.setdefault(PROBLEMS, {})[place] = {"message": message, "context": context}


def problem(place: str, context: object) -> str | None:
    """The last failure at ``place``, while its inputs are still ``context``."""
    kept = st.session_state.get(PROBLEMS, {}).get(place)
    return kept["message"] if kept and kept["context"] == context else None


def clear_problems() -> None:
    st.session_state.pop(PROBLEMS, None)


def bump_edit_version() -> None:
    """New editor widgets: after a refit the rows re-sort, so old row positions mean nothing."""
    st.session_state[EDIT_VERSION] = edit_version() + 1


def edit_version() -> int:
    return int(st.session_state.get(EDIT_VERSION, 0))


KEPT_SESSIONS = 3  # how many replaced sessions are kept aside, most recent first


def kept_sessions() -> list[dict]:
    """Sessions set aside by replacing steps, most recent first ({"session", "when"})."""
    return st.session_state.setdefault(PREVIOUS, [])


def keep_previous(session: Session, when: str) -> dict | None:
    """Set a session aside (before a step replaces its student) so it can be brought back;
    returns the oldest kept session if it had to make room (the dialog says so first)."""
    stack = [{"session": session, "when": when}, *kept_sessions()]
    st.session_state[PREVIOUS] = stack[:KEPT_SESSIONS]
    return stack[KEPT_SESSIONS] if len(stack) > KEPT_SESSIONS else None


def previous() -> dict | None:
    stack = kept_sessions()
    return stack[0] if stack else None


def bring_back_previous() -> None:
    """Swap the current session with the most recent one set aside: neither is lost."""
    stack = kept_sessions()
    kept = stack[0]
    st.session_state[PREVIOUS] = [{"session": get_session(), "when": "before bringing the previous one back"},
                                  *stack[1:]]
    replace_session(kept["session"])
    clear_pending()
