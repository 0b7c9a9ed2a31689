"""Local autosave: after each step the session is written (as a bundle) into the cache folder,
and after a browser refresh the sidebar offers to restore it. On a hosted deployment nothing a
visitor makes is written to the server's disk: the sidebar offers the download instead."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import streamlit as st

from infi.bundle import load_session, save_session
from infi.cache import default_cache_dir
from infi.session import Session
from infi.ui import state
from infi.ui.markdown import escape

FILE = "last-session.infi"
META = "last-session.json"
KEPT_FILE = "kept-session.infi"  # the session a replacing step set aside most recently


def folder() -> Path:
    return default_cache_dir() / "autosave"


def fingerprint(session: Session) -> tuple:
    """What changes when a step changes the session (a refit, a restore, new concepts …)."""
    steps = session.provenance.steps
    return (id(session), id(session.P), id(session.concepts), id(session.student), len(steps),
            steps[-1].created if steps else None)


def autosave(session: Session) -> None:
    """Write the session when it changed since the last save (local runs only, and only once
    there is something a bundle can hold: teacher outputs and concepts)."""
    mark = fingerprint(session)
    if st.session_state.get(state.AUTOSAVED) == mark or not _write(session, FILE):
        return
    (folder() / META).write_text(json.dumps({"saved": time.time(), **session.status()}))
    st.session_state[state.AUTOSAVED] = mark


def _write(session: Session, name: str) -> bool:
    """Write the session as a bundle into the autosave folder (atomically); False when it is
    not written: on a hosted deployment, or before there is anything a bundle can hold."""
    if state.hosted() or session.P is None or session.concepts is None:
        return False
    target = folder()
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / (name + ".tmp")
    tmp.write_bytes(save_session(session))
    os.replace(tmp, target / name)
    return True


def save_kept(session: Session) -> None:
    """Write a session set aside by a replacing step (local runs only), so a refresh loses it
    neither: the restore offer lists it beside the last session."""
    _write(session, KEPT_FILE)


def restorable() -> bool:
    """Whether an autosaved session waits to be restored here (local runs, not dismissed)."""
    if state.hosted() or st.session_state.get(state.AUTOSAVE_DISMISSED):
        return False
    return (folder() / FILE).is_file() and (folder() / META).is_file() or (folder() / KEPT_FILE).is_file()


def offer_restore(session: Session) -> None:
    """In the sidebar of an empty session: bring back what was autosaved before a refresh."""
    if state.hosted():
        st.sidebar.caption("This hosted app keeps nothing you make on its server: use **Save session "
                           "(.infi)** to keep your work.")
        return
    if session.dataset is not None or session.store is not None or session.P is not None or not restorable():
        return
    meta_path, file, kept = folder() / META, folder() / FILE, folder() / KEPT_FILE
    has_last, has_kept = file.is_file() and meta_path.is_file(), kept.is_file()
    from infi.ui.feedback import guarded

    box = st.sidebar.container(border=True)
    if has_last:
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            meta = {}
        saved = time.strftime("%d %b %H:%M", time.localtime(meta.get("saved", 0)))
        parts = [meta.get(k) for k in ("dataset", "teacher", "concepts", "student") if meta.get(k)]
        box.markdown(f"**Your last session** (autosaved {saved}): " + escape("; ".join(parts)))
        if box.button("Restore it", key=state.BTN_RESTORE_AUTOSAVE, type="primary", width="stretch"):
            with guarded("Restoring the autosaved session", where=st.sidebar):
                state.replace_session(load_session(file.read_bytes(), session))
                st.session_state[state.AUTOSAVED] = fingerprint(state.get_session())
                state.notify(f"Restored the session autosaved {saved}.")
                st.rerun()
    if has_kept and box.button("Restore the session a replacing step set aside", key=state.BTN_RESTORE_KEPT,
                               width="stretch"):
        with guarded("Restoring the session set aside", where=st.sidebar):
            state.replace_session(load_session(kept.read_bytes(), session))
            state.notify("Restored the session that a replacing step had set aside.")
            st.rerun()
    if box.button("Start fresh", key=state.BTN_DISMISS_AUTOSAVE, width="stretch"):
        st.session_state[state.AUTOSAVE_DISMISSED] = True
        st.rerun()
