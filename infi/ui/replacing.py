"""Steps that would drop a tuned student ask first, and keep what they drop restorable.

Re-distilling, re-extracting, a new teacher or a new dataset replace the student. When it has
edits, a dialog asks; on "Replace it" the whole current session is set aside as the previous
session (the sidebar brings it back), then the step runs.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from infi.session import Session
from infi.ui import state
from infi.ui.autosave import save_kept
from infi.ui.markdown import escape


def edits_at_risk(session: Session) -> int:
    """How many steps since the fit a replacing step would drop (0: nothing to ask about)."""
    return len(session.provenance) - 1 if session.student is not None else 0


def ask_or_run(session: Session, what: str, run: Callable[[], None]) -> None:
    """Run ``run`` now, or, when it would drop a student with edits, ask first: the question is
    kept in the session and the dialog opens on every run until it is answered."""
    if edits_at_risk(session) == 0:
        run()
        return
    st.session_state[state.CONFIRMING] = {"what": what, "run": run}
    st.rerun()


def open_question(session: Session) -> None:
    """The dialog for a question ``ask_or_run`` left open (called by the app on every run)."""
    question = st.session_state.get(state.CONFIRMING)
    if question is not None:
        _confirm(session, question["what"], question["run"])


@st.dialog("Replace the tuned student?", dismissible=False)
def _confirm(session: Session, what: str, run: Callable[[], None]) -> None:
    n = edits_at_risk(session)
    st.markdown(f"{escape(what)} replaces the student and its {n} step{'s' if n != 1 else ''} since the fit. "
                "Infi keeps the current session aside: **Bring back the previous session** in the "
                "sidebar restores it, student, edits and provenance included.")
    if len(state.kept_sessions()) >= state.KEPT_SESSIONS:
        oldest = state.kept_sessions()[-1]
        st.warning(f"Infi keeps {state.KEPT_SESSIONS} sessions aside; the oldest (kept "
                   f"{escape(oldest['when'])}) will be dropped. Save it first from the sidebar if you need it.",
                   icon=":material/warning:")
    c1, c2 = st.columns(2)
    if c1.button("Replace it", type="primary", key=state.BTN_CONFIRM_REPLACE, width="stretch"):
        st.session_state.pop(state.CONFIRMING, None)
        state.keep_previous(session.snapshot(), f"before {what[0].lower() + what[1:]}")
        save_kept(session)  # locally, the kept session also survives a browser refresh
        run()
        st.rerun()
    if c2.button("Keep my student", key=state.BTN_CANCEL_REPLACE, width="stretch"):
        st.session_state.pop(state.CONFIRMING, None)
        st.rerun()
