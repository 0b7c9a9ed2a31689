"""Failures in the app: a person's problem is a message, a bug is reported as one."""

from streamlit.testing.v1 import AppTest


def failing_steps():
    from infi.errors import DataError
    from infi.ui.feedback import guarded

    with guarded("Reading the upload", "Upload a ZIP."):
        raise DataError("photos.zip: not a readable ZIP archive")
    with guarded("Distilling"):
        raise KeyError("an index that should exist")
    import streamlit as st

    st.write("the page goes on")


def test_an_infi_error_is_a_message_and_anything_else_is_called_a_bug():
    from tests.helpers import plain

    at = AppTest.from_function(failing_steps).run()
    assert not at.exception
    first, second = (plain(e.value) for e in at.error)
    assert "Reading the upload failed" in first and "photos.zip: not a readable ZIP" in first
    assert "Upload a ZIP." in first and "bug" not in first
    assert "unexpected KeyError" in second and "This is a bug in Infi" in second
    assert at.markdown[-1].value == "the page goes on"


def test_error_text_from_a_file_name_cannot_inject_markdown():
    from tests.helpers import plain

    def step():
        from infi.errors import DataError
        from infi.ui.feedback import guarded

        with guarded("Reading the upload"):
            raise DataError("![x](http://tracker.example/p.png).zip: not a readable ZIP archive")

    at = AppTest.from_function(step).run()
    (message,) = (e.value for e in at.error)
    assert "\\!\\[x\\]\\(http" in message  # shown as text, not fetched as an image
    assert "![x](http://tracker.example/p.png).zip" in plain(message)
