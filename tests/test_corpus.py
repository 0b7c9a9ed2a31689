"""Concept corpora: the built-in vocabulary, presets and user lists with validation."""

import pytest

from infi.corpus import (
    MAX_CONCEPT_CHARS,
    Corpus,
    builtin_corpus,
    parse_concept_file,
    preset,
    preset_names,
)
from infi.demo.plugin import demo_corpus


def test_builtin_vocabulary_is_large_categorised_and_unique():
    corpus = builtin_corpus()
    assert len(corpus) >= 580
    assert len(set(corpus.concepts)) == len(corpus)
    cats = set(corpus.categories)
    assert {"colours", "patterns and textures", "materials", "shapes", "scenes and stuff",
            "object parts", "objects"} <= cats
    for word in ("grass", "zebra", "striped", "wheel", "brick wall"):
        assert word in corpus.concepts


def test_demo_corpus_holds_every_world_word():
    corpus = demo_corpus()
    assert {"triangle", "grass", "striped", "small", "purple"} <= set(corpus.concepts)
    assert dict(zip(corpus.concepts, corpus.categories))["grass"] == "background"


def test_presets():
    for name in preset_names():
        assert len(preset(name)) > 0
    assert set(preset("colours").categories) == {"colours"}
    with pytest.raises(ValueError, match="preset"):
        preset("nonsense")


def test_text_list_is_trimmed_lowercased_and_deduplicated():
    corpus = parse_concept_file(b"  Grass \n\nstriped\ngrass\n  Red   Brick  \n", "mine.txt")
    assert corpus.concepts == ("grass", "striped", "red brick")


def test_csv_list_with_categories():
    corpus = parse_concept_file(b"concept,category\nfur,texture\nwheel,part\n", "c.csv")
    assert corpus.concepts == ("fur", "wheel") and corpus.categories == ("texture", "part")
    with pytest.raises(ValueError, match="'concept' column"):
        parse_concept_file(b"name\nfur\n", "c.csv")


@pytest.mark.parametrize("data, message", [
    (b"\n \n", "empty"),
    (("x" * (MAX_CONCEPT_CHARS + 1)).encode(), "characters long"),
    (b"\xc3\x28bad", "UTF-8"),
    ("\n".join(f"concept {i}" for i in range(6000)).encode(), "6,000 is over the limit of 5,000"),
    (b"x\n" * (5 * 1024**2), "more than a concept list needs"),
])
def test_bad_lists_are_clear_errors(data, message):
    with pytest.raises(ValueError, match=message):
        parse_concept_file(data, "list.txt")


def test_utf16_lists_are_read():
    assert parse_concept_file("fur\nstripes\n".encode("utf-16"), "list.txt").concepts == ("fur", "stripes")


def test_edited_rows_keep_known_categories_and_new_ones_are_custom():
    base = demo_corpus()
    kept = [c for c in base.concepts if c != "grass"]
    edited = base.with_concepts([*kept, "Zebra", "sky"])
    assert "grass" not in edited.concepts and edited.concepts[-1] == "zebra"
    assert edited.concepts.count("sky") == 1 and len(edited) == len(base)
    cats = dict(zip(edited.concepts, edited.categories))
    assert cats["zebra"] == "custom" and cats["sky"] == "background"


def test_templates_need_one_placeholder():
    with pytest.raises(ValueError, match="placeholder"):
        Corpus(("a",), ("x",), ("no slot",))
    assert Corpus(("a", "b"), ("x", "x"), ("{}", "photo of {}")).prompts() == ["a", "b", "photo of a", "photo of b"]
