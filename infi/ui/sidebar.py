"""The sidebar: pipeline status, the classroom tour on the demo, and session save / load."""

from __future__ import annotations

import streamlit as st

from infi.bundle import load_session, save_session
from infi.demo.world import BACKGROUNDS
from infi.session import Session
from infi.ui import exercise_view, state
from infi.ui.autosave import offer_restore
from infi.ui.feedback import guarded
from infi.ui.markdown import DONE, TODO, escape
from infi.ui.replacing import ask_or_run

TOUR_GAIN = 0.02  # shifted accuracy gain since the fit that counts as a repair
STEP_LABELS = {"dataset": "Dataset", "teacher": "Teacher", "concepts": "Concepts", "student": "Student"}


def tour_steps(session: Session) -> list[tuple[str, bool]]:
    """The five-minute story on Shapes World, each step checked when the session shows it done."""
    demo = session.dataset is not None and session.dataset.source.get("kind") == "shapes-world"
    steps = session.provenance.steps
    background_edit = [s for s in steps[1:] if any(a.get("concept") in BACKGROUNDS for a in s.actions)]
    # "Rises" means a real repair: at least TOUR_GAIN since the fit, not a rounding wobble.
    at_fit = steps[0].metrics_after.get("shifted_accuracy") if steps else None
    now = steps[-1].metrics_after.get("shifted_accuracy") if steps else None
    rose = bool(background_edit) and at_fit is not None and now is not None and now - at_fit >= TOUR_GAIN
    return [
        ("Load Shapes World with a shifted split (Data)", demo and "shifted" in session.eval_sets),
        ("Run the demo teacher (Data)", session.P is not None and session.teacher_name == "demo teacher"),
        ("Extract concepts with the demo encoder (Concepts)", session.concepts is not None),
        ("Distill the concept student (Distill)", session.student is not None),
        ("Notice which background drives a shape, then remove the background group on it (Fine-tune)",
         bool(background_edit)),
        (f"Watch accuracy on the shifted split rise by {TOUR_GAIN:.0%} or more since the fit", rose),
    ]


def render_sidebar(session: Session) -> None:
    st.sidebar.subheader("Pipeline")
    for key, line in session.status().items():
        mark = DONE if line else TODO
        st.sidebar.markdown(f"{mark} **{STEP_LABELS[key]}** — {escape(line or 'not done')}")
    exercise = exercise_view.active(session)
    if exercise is not None:  # the background tour would give a background exercise away, and is off-topic for others
        with st.sidebar.expander(f"{exercise.title}: the steps", expanded=True):
            exercise_view.checklist(session, exercise)
    else:
        with st.sidebar.expander("Classroom tour: the five-minute story", expanded=session.student is None):
            for i, (text, done) in enumerate(tour_steps(session), 1):
                st.markdown(f"{DONE if done else TODO} {i}. {text}")
    st.sidebar.subheader("Session")
    offer_restore(session)
    kept = state.previous()
    if kept is not None:
        box = st.sidebar.container(border=True)
        box.markdown(f"**Previous session** kept ({escape(kept['when'])}): "
                     + escape("; ".join(v for v in kept["session"].status().values() if v)))
        if box.button("Bring back the previous session", key=state.BTN_BRING_BACK, width="stretch"):
            state.bring_back_previous()
            state.notify("The previous session is back; the one you had is now kept as the previous one.")
            st.rerun()
    if session.concepts is not None and session.P is not None:
        # Built on click, not on every rerun: at 10,000 images x 584 concepts a bundle takes ~1.3 s.
        st.sidebar.download_button("Save session (.infi)", lambda: save_session(session), "session.infi",
                                   mime="application/zip", on_click="ignore", width="stretch")
    else:
        st.sidebar.caption("Save becomes available once teacher outputs and concepts exist.")
    upload = st.sidebar.file_uploader("Load a session (.infi)", type=["infi"], key=state.BUNDLE_UPLOAD,
                                      max_upload_size=state.upload_mb("max_bundle_bytes"))
    replaced = work_in(session)
    if upload is not None and replaced:
        st.sidebar.warning(f"Loading replaces this session's {replaced}: save it first if you need it.")
    if session.prg_run is not None:
        st.sidebar.caption("A session file does not hold the compact model: download it from the Distill page.")
    if upload is not None and st.sidebar.button("Load this session", width="stretch", key=state.BTN_LOAD_BUNDLE):
        loaded = None
        with guarded("Loading the session", "Choose a .infi file saved by Infi.", where=st.sidebar):
            loaded = load_session(upload.getvalue())
        if loaded is not None:
            name = upload.name

            def use_it() -> None:
                state.replace_session(loaded)
                state.notify(f"Loaded session from {name}."
                             + (f" It replaced the previous session's {replaced}." if replaced else ""))
                st.rerun()

            # A tuned student is not dropped unasked: the dialog sets it aside first.
            ask_or_run(session, f"Loading {name}", use_it)


def work_in(session: Session) -> str:
    """What a user would lose by replacing this session, in words ('' when nothing)."""
    parts = [name for name, present in (("teacher outputs", session.P is not None),
                                         ("concept scores", session.concepts is not None),
                                         ("compact model", session.prg_run is not None)) if present]
    if session.student is not None:
        edits = len(session.provenance) - 1
        parts.append(f"student and {edits} edit{'s' if edits != 1 else ''}")
    return ", ".join(parts)
