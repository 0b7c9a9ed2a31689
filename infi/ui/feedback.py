"""Running long steps with progress, and turning failures into messages instead of tracebacks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import streamlit as st

from infi.errors import InfiError
from infi.ui.markdown import escape

log = logging.getLogger("infi.ui")


@contextmanager
def guarded(what: str, fix: str = "", where=st, keep: Callable[[str], None] | None = None) -> Iterator[None]:
    """Show ``st.error`` naming the problem (and a fix) when the block fails; the session and
    everything computed before stay as they were. Only an ``InfiError`` is the person's to fix;
    anything else is a bug: logged with its traceback, and reported as one without it. With
    ``keep``, the message goes to it instead (to be shown from session state on later runs).
    ``what`` and the error text are escaped: both can hold file and class names."""
    def report(message: str) -> None:
        if keep is not None:
            keep(message)
        else:
            where.error(message, icon=":material/error:")

    try:
        yield
    except InfiError as err:
        log.info("%s failed: %s", what, err)
        message = f"**{escape(what)} failed.** {escape(err)}" + (f"\n\n{fix}" if fix else "")
        report(message)
    except Exception as err:  # noqa: BLE001 - nothing may reach the user as a traceback
        log.exception("%s failed unexpectedly", what)
        message = (f"**{escape(what)} failed** with an unexpected {type(err).__name__}: {escape(err)}. "
                   "This is a bug in Infi; the traceback is in the app's log. Your earlier results are kept.")
        report(message)


def progress_status(label: str) -> tuple[object, Callable[[int, int], None]]:
    """An ``st.status`` box with a progress bar; returns (status, progress callback)."""
    status = st.status(escape(label), expanded=True)
    bar = status.progress(0.0, text="starting…")

    def report(done: int, total: int) -> None:
        bar.progress(min(1.0, done / max(total, 1)), text=f"{done} / {total}")

    return status, report


@contextmanager
def progress_step(label: str) -> Iterator[Callable[[int, int], None]]:
    """A status box with a progress bar around a step (loading thousands of images, say): it
    ends as done, or as failed when the block raises (the error itself is shown by ``guarded``)."""
    status, report = progress_status(label)
    try:
        yield report
    except BaseException:
        status.update(label=f"{escape(label)} failed", state="error", expanded=False)
        raise
    status.update(label=f"{escape(label)} done", state="complete", expanded=False)
