"""Running long steps with progress, and turning failures into messages instead of tracebacks."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Callable, Iterator

import streamlit as st

from infi.bundle import BundleError
from infi.data import DataError
from infi.session import SessionError

log = logging.getLogger("infi.ui")
EXPECTED = (ValueError, OSError, SessionError, DataError, BundleError, RuntimeError)


@contextmanager
def guarded(what: str, fix: str = "") -> Iterator[None]:
    """Show ``st.error`` naming the problem (and a fix) when the block fails; the session and
    everything computed before stay as they were. Unexpected errors are logged, not shown raw."""
    try:
        yield
    except EXPECTED as err:
        log.info("%s failed: %s", what, err)
        st.error(f"**{what} failed.** {err}" + (f"\n\n{fix}" if fix else ""), icon=":material/error:")
    except Exception as err:  # noqa: BLE001 - nothing may reach the user as a traceback
        log.exception("%s failed unexpectedly", what)
        st.error(f"**{what} failed** with an unexpected {type(err).__name__}: {err}. "
                 "The details are in the app's log; your earlier results are kept.", icon=":material/error:")


def progress_status(label: str) -> tuple[object, Callable[[int, int], None]]:
    """An ``st.status`` box with a progress bar; returns (status, progress callback)."""
    status = st.status(label, expanded=True)
    bar = status.progress(0.0, text="starting…")

    def report(done: int, total: int) -> None:
        bar.progress(min(1.0, done / max(total, 1)), text=f"{done} / {total}")

    return status, report
