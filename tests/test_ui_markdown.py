"""User text shown through markdown is escaped: a hostile class or concept name stays text."""

from streamlit.testing.v1 import AppTest

from infi.ui.markdown import escape


def test_markdown_specials_are_escaped():
    hostile = "![x](http://evil.example/t.png) [re-login](http://evil.example) <b>*bold*</b> `code`"
    out = escape(hostile)
    for token in ("![", "](", "<b>", "*bold*", "`code`"):
        assert token not in out
    assert escape("grass on triangle") == "grass on triangle"


def hostile_names_app():
    import streamlit as st

    from infi.ui.markdown import escape as esc

    st.markdown("**Waiting to apply:** " + esc("remove ![x](http://evil.example/t.png) on [cls](http://e.x)"))


def test_an_escaped_name_renders_as_text_not_as_an_image_or_a_link():
    at = AppTest.from_function(hostile_names_app).run()
    value = at.markdown[0].value
    assert "\\!\\[x\\]\\(http\\:" in value and "\\[cls\\]" in value
