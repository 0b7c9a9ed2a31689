"""Exercise page components: start a classroom exercise, check a diagnosis, reveal the answer.

Until Reveal, nothing rendered names the scenario: students see "Exercise 2" and the evidence
(accuracies, influences), never the planted shortcut's words.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from infi.demo.exercise import (
    EXERCISES,
    RANDOM,
    REPAIR_HOLD,
    Exercise,
    diagnose,
    evidence,
    exercise_data,
    exercise_of,
    pick,
    planted_ranks,
    repair_actions,
    repair_preview,
    teacher_gap,
)
from infi.demo.teacher import DemoTeacherAdapter
from infi.session import Session
from infi.ui import state
from infi.ui.autosave import restorable
from infi.ui.data_view import run_teacher
from infi.ui.feedback import guarded, progress_step
from infi.ui.markdown import DONE, TODO, escape
from infi.ui.replacing import ask_or_run

CHOICES: tuple[str, ...] = (*(str(i) for i in range(1, len(EXERCISES) + 1)), RANDOM)
TEACHER_NAME = "exercise teacher"


def choice_label(choice: str) -> str:
    return "A random one (nobody knows which, not even you)" if choice == RANDOM else f"Exercise {choice}"


def active(session: Session) -> Exercise | None:
    """The exercise this session's dataset belongs to, if any."""
    return exercise_of(session.dataset)


def progress_of(exercise: Exercise, session: Session) -> dict:
    """This exercise's answers and whether it is revealed; kept per dataset, so a new exercise
    (even the same number again) starts clean."""
    views = st.session_state.setdefault(state.EXERCISE_VIEW, {})
    key = (session.dataset.content_hash, session.dataset.source.get("exercise_run"))
    return views.setdefault(key, {"tries": 0, "solved": False, "revealed": False, "last": None})


def hiding(session: Session) -> bool:
    """True while an exercise runs and is not revealed: pages then leave out every hint."""
    exercise = active(session)
    return exercise is not None and not progress_of(exercise, session)["revealed"]


def query_choice() -> str | None:
    """``?exercise=3`` (or ``random``) after the app's address picks that exercise and opens this
    page (app.py makes it the default page then): an instructor shares one link with the class."""
    value = str(st.query_params.get("exercise", "")).strip().lower()
    return value if value in CHOICES else None


def start_picker(session: Session) -> None:
    """Choose an exercise and start it; from a shared link, an empty session starts at once."""
    st.markdown("Each exercise hides a **shortcut**: a small CNN teacher learned to answer from something "
                "other than the shape. Your job: distill it into a concept student, find the concept the "
                "teacher leans on, and say which class it affects. Your instructor gives you the number.")
    linked = query_choice()
    options = list(CHOICES)
    index = options.index(linked) if linked else state.kept_index(state.EXERCISE_PICK, options)
    choice = st.selectbox("Exercise", options, index=index, format_func=choice_label,
                          **state.keeps(state.EXERCISE_PICK))
    empty = session.dataset is None and session.store is None
    # The sidebar offers an autosave: a class link must not start over it (the new exercise would
    # replace the offer and, soon, the autosave).
    waiting = linked is not None and empty and restorable()
    auto = linked is not None and empty and not waiting and not st.session_state.get(state.EXERCISE_AUTOSTARTED)
    if waiting:
        st.info("Your last session was autosaved on this machine: **Restore it** in the sidebar to go on with it, "
                "or press **Start the exercise** for a new one.")
    if st.button("Start the exercise", type="primary", key=state.BTN_START_EXERCISE) or auto:
        st.session_state[state.EXERCISE_AUTOSTARTED] = True
        exercise = pick(choice)
        loaded = None
        with guarded(f"Starting {exercise.title.lower()}"):
            with progress_step("Drawing the exercise's images") as report:
                report(0, 1)
                loaded = exercise_data(exercise)
                report(1, 1)
        if loaded is None:
            return

        def use_it() -> None:
            cleared = session.set_dataset(*loaded)
            state.notify(f"{exercise.title} started: {len(loaded[0]):,} biased images (drawn like the teacher's "
                         f"training set) and {len(loaded[1]['shifted']):,} shifted images to test on."
                         + (" Cleared: " + ", ".join(cleared) + " (they belonged to the previous dataset)."
                            if cleared else "") + " Next: run the exercise teacher on Data & teacher.")
            st.rerun()

        ask_or_run(session, f"Starting {exercise.title.lower()}", use_it)


def steps(session: Session, exercise: Exercise) -> list[tuple[str, bool]]:
    """The exercise's steps, each checked when the session shows it done; no step names a hint."""
    view = progress_of(exercise, session)
    return [
        ("Run the exercise teacher and compare its accuracy on the biased and the shifted images "
         "(Data & teacher)", session.P is not None),
        ("Extract concepts with the demo encoder (Concepts)", session.concepts is not None),
        ("Distill the concept student (Distill)", session.student is not None),
        ("Find a class whose top influences include a concept that is not about shape (Distill, Fine-tune)",
         view["tries"] > 0),
        ("Submit a diagnosis the form accepts (below)", view["solved"]),
        ("Remove that concept or its group and watch the shifted accuracy (Fine-tune)",
         len(session.provenance) > 1 if session.student is not None else False),
    ]


def checklist(session: Session, exercise: Exercise) -> None:
    for i, (text, ok) in enumerate(steps(session, exercise), 1):
        st.markdown(f"{DONE if ok else TODO} {i}. {text}")


def diagnosis_form(session: Session, exercise: Exercise) -> None:
    """Affected class and concept (or group): feedback that points where to look."""
    view = progress_of(exercise, session)
    st.subheader("My diagnosis")
    if session.student is None:
        st.info("The form opens once a student is distilled: its influences are your evidence.")
        return
    groups = session.concept_groups()
    answers = [f"group: {g}" for g in groups] + [c for members in groups.values() for c in members]
    with st.form(state.DIAGNOSIS_FORM):
        c1, c2 = st.columns(2)
        cls = c1.selectbox("The class that leans on a shortcut", session.class_names, key=state.DIAGNOSIS_CLASS)
        answer = c2.selectbox("The concept (or group of concepts) it leans on", answers,
                              key=state.DIAGNOSIS_ANSWER)
        submitted = st.form_submit_button("Check my diagnosis", type="primary")
    if submitted:
        verdict = diagnose(exercise.scenario, cls, answer.removeprefix("group: "), groups)
        view["tries"] += 1
        view["solved"] = view["solved"] or verdict.correct
        view["last"] = {"correct": verdict.correct, "message": verdict.message, "answer": f"{cls} · {answer}"}
    last = view["last"]
    if last is not None:
        shown = st.success if last["correct"] else st.warning
        shown(f"**{escape(last['answer'])}** — {escape(last['message'])}",
              icon=":material/check_circle:" if last["correct"] else ":material/search:")
        st.caption(f"{view['tries']} answer{'s' if view['tries'] != 1 else ''} checked so far.")


def reveal_button(session: Session, exercise: Exercise) -> None:
    view = progress_of(exercise, session)
    if view["revealed"]:
        return
    st.divider()
    st.caption("Reveal shows the planted shortcut, the teacher's accuracy with and without it, and the repair. "
               "Try a diagnosis first: the reveal ends the guessing.")
    with st.popover("Reveal the answer"):
        st.markdown("This shows the answer on every page of this exercise. Ready?")
        if st.button("Yes, reveal it", key=state.BTN_REVEAL, type="primary"):
            view["revealed"] = True
            st.rerun()


def reveal(session: Session, exercise: Exercise) -> None:
    """The planted shortcut, the teacher's gap, the planted concepts' ranks and the repair."""
    if not progress_of(exercise, session)["revealed"]:
        return
    s = exercise.scenario
    st.divider()
    st.subheader(f"The answer: {escape(s.title)}")
    st.markdown(f"{escape(exercise.title)} is the **{escape(s.name)}** scenario. {escape(s.lesson)}")
    ranks = planted_ranks(session, s) if session.student is not None else {}
    st.dataframe(pd.DataFrame([{
        "class": p.cls, "mostly shows": p.value, "group": p.attribute,
        "rank in the student's influence list": ranks.get(f"{p.cls}: {p.value}", "— (distill first)")}
        for p in s.planted]).astype({"rank in the student's influence list": str}), hide_index=True)
    if any(len(evidence(p, session.concept_groups())) > 1 for p in s.planted):
        st.caption("For a two-valued attribute the rank is that of either value: a student that uses "
                   "“large” negatively for a class uses “small” for it.")
    biased, shifted = teacher_gap(session)
    if biased is not None and shifted is not None:
        c1, c2, c3 = st.columns(3)
        c1.metric("Teacher on biased images", f"{biased:.1%}",
                  help="Drawn like its training set (the shortcut mostly holds); not the images it trained on")
        c2.metric("Teacher on shifted images", f"{shifted:.1%}")
        c3.metric("What the shortcut costs", f"{100 * (biased - shifted):.1f} pts")
    groups = ", ".join(a.group for a in repair_actions(s))
    st.markdown(f"**The repair:** remove the {escape(groups)} group{'s' if ',' in groups else ''} from every "
                f"class on Fine-tune, holding the other concepts (±{REPAIR_HOLD:.0%}, the default), so the student "
                "must answer from the shape and correlated concepts cannot quietly take the group's role.")
    if session.student is None or "shifted" not in session.eval_sets or session.eval_sets["shifted"].P is None:
        st.info("Distill a student to see what the repair does to it.")
        return
    preview = None
    with guarded("Measuring the repair"):
        with st.spinner("Trying the repair on a copy of your student…"):
            preview = cached_preview(session, exercise)
    if preview is None or preview["before"] is None:
        return
    if all(session.in_place(repair_actions(s))):
        st.success(f"The repair is in place in your student: accuracy on the shifted images is "
                   f"{preview['before']:.1%} now ({100 * (preview['before'] - fit_accuracy(session)):+.1f} pts since "
                   "the fit). Fine-tune's provenance holds the step; Undo there reverts it.")
        return
    gain = 100 * (preview["after"] - preview["before"])
    st.markdown(f"On a copy of your student (yours is unchanged), the repair takes accuracy on the shifted "
                f"images from **{preview['before']:.1%}** to **{preview['after']:.1%}** ({gain:+.1f} pts).")
    if st.button("Apply this repair to my student", key=state.BTN_APPLY_REPAIR):
        with guarded("Applying the repair"):
            step = session.tune(repair_actions(s), label="exercise repair", hold_others=REPAIR_HOLD)
            state.notify(f"Repair applied (a provenance step on Fine-tune; Undo reverts it): shifted accuracy "
                         f"{step.metrics_before.get('shifted_accuracy', 0):.1%} → "
                         f"{step.metrics_after.get('shifted_accuracy', 0):.1%}.")
            st.rerun()


def fit_accuracy(session: Session, split: str = "shifted") -> float:
    """The student's accuracy on ``split`` at the fit (provenance step 0)."""
    return session.provenance.steps[0].metrics_after.get(f"{split}_accuracy") or 0.0


def cached_preview(session: Session, exercise: Exercise) -> dict:
    """``repair_preview``, measured once per student state (a refit on every rerun would lag)."""
    view = progress_of(exercise, session)
    steps_ = session.provenance.steps
    mark = (id(session.student), len(steps_), steps_[-1].created if steps_ else None)
    if view.get("preview_mark") != mark:
        view["preview"] = repair_preview(session, exercise.scenario)
        view["preview_mark"] = mark
    return view["preview"]


def teacher_panel(session: Session) -> None:
    """Data & teacher during an exercise: only the exercise's teacher, described without hints."""
    exercise = active(session)
    st.subheader("Teacher")
    st.caption("A small CNN trained on a biased split of Shapes World. How it decides is what you will find out.")
    if st.button("Run the exercise teacher", type="primary", key=state.BTN_TEACHER):
        teacher = None
        with guarded("Loading the exercise teacher"):
            teacher = DemoTeacherAdapter(name=TEACHER_NAME, scenario=exercise.scenario.name)
        if teacher is not None:
            run_teacher(session, teacher)
