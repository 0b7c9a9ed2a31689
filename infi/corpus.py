"""Concept corpora: the built-in vocabulary, registered ones (a plug-in's), presets and user lists.

A corpus is an ordered list of unique concept names with a category each, plus the prompt
templates whose averaged text embeddings stand for a concept (CLIP's prompt ensembling).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

from infi import registry
from infi.errors import CorpusError, LimitError
from infi.limits import Budget

MAX_CONCEPT_CHARS = 80  # a prompt is a short phrase; the budget's max_concept_chars caps it further
MAX_FILE_BYTES = 8 * 1024**2  # a concept list file
DEFAULT_TEMPLATES: tuple[str, ...] = ("{}", "a photo of {}", "an image with {}")
_DATA = "infi.data_files"


@dataclass(frozen=True)
class Corpus:
    """Concept names (unique, ordered), their categories and the prompt templates."""

    concepts: tuple[str, ...]
    categories: tuple[str, ...]
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    name: str = "custom"

    def __post_init__(self) -> None:
        if len(self.concepts) != len(self.categories):
            raise CorpusError("categories: one category per concept is needed")
        if not self.concepts:
            raise CorpusError("concepts: a corpus needs at least one concept")
        if len(set(self.concepts)) != len(self.concepts):
            raise CorpusError("concepts: names must be unique")
        for t in self.templates:
            if t.count("{}") != 1:
                raise CorpusError(f"templates: {t!r} must contain exactly one '{{}}' placeholder")

    def __len__(self) -> int:
        return len(self.concepts)

    def prompts(self) -> list[str]:
        """All prompts, template-major: prompt[t * K + j] is template t for concept j."""
        return [t.format(c) for t in self.templates for c in self.concepts]

    def with_concepts(self, concepts: Sequence[str], categories: Sequence[str] | None = None) -> Corpus:
        names = clean_concepts(concepts)
        by_name = dict(zip(self.concepts, self.categories))
        cats = tuple(categories) if categories is not None else tuple(by_name.get(c, "custom") for c in names)
        return Corpus(tuple(names), cats, self.templates, self.name)

    def to_dict(self) -> dict:
        return {"concepts": list(self.concepts), "categories": list(self.categories),
                "templates": list(self.templates), "name": self.name}

    @classmethod
    def from_dict(cls, d: dict) -> Corpus:
        return cls(tuple(d["concepts"]), tuple(d["categories"]), tuple(d["templates"]),
                   str(d.get("name", "custom")))


def clean_concepts(raw: Iterable[str], budget: Budget | None = None) -> list[str]:
    """Trim, lower-case and de-duplicate names (first occurrence wins); reject absurd entries and
    lists over the budget's concept count (a list file is at most ``MAX_FILE_BYTES``)."""
    budget = budget or Budget.current()
    max_chars = min(MAX_CONCEPT_CHARS, budget.max_concept_chars)
    out: list[str] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, str):
            raise CorpusError(f"concepts: entry {i + 1} is not text ({item!r})")
        name = " ".join(item.strip().lower().split())
        if not name:
            continue
        if len(name) > max_chars:
            raise CorpusError(f"concepts: entry {i + 1} is {len(name)} characters long "
                             f"(at most {max_chars}): {name[:40]!r}…")
        if any(ord(ch) < 32 for ch in name):
            raise CorpusError(f"concepts: entry {i + 1} contains control characters")
        if name not in seen:
            seen.add(name)
            out.append(name)
    if not out:
        raise CorpusError("concepts: the list is empty after trimming blank lines")
    budget.check("max_concepts", len(out), "concepts: the number of distinct concepts")
    return out


def builtin_corpus() -> Corpus:
    """The general visual vocabulary (colours, patterns and textures, materials, shapes, scenes
    and stuff, object parts, objects), seeded with the COCO-Stuff and CIFAR-100 names."""
    text = resources.files(_DATA).joinpath("builtin_concepts.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    return Corpus(tuple(r["concept"] for r in rows), tuple(r["category"] for r in rows),
                  DEFAULT_TEMPLATES, "built-in")


def preset(name: str) -> Corpus:
    """A registered corpus (a plug-in's vocabulary), the built-in vocabulary, one of its
    categories, or a named list file."""
    if name in registry.CORPORA:
        return registry.CORPORA.get(name)()
    if name == "built-in":
        return builtin_corpus()
    full = builtin_corpus()
    if name in set(full.categories):
        keep = [i for i, c in enumerate(full.categories) if c == name]
        return Corpus(tuple(full.concepts[i] for i in keep), tuple(full.categories[i] for i in keep),
                      full.templates, name)
    if name in ("coco-stuff", "cifar-100"):
        file = "cocostuff_labels.txt" if name == "coco-stuff" else "cifar100_classes.txt"
        raw = resources.files(_DATA).joinpath(file).read_text().splitlines()
        names = clean_concepts(r.replace("-other", "").replace("-", " ").replace("_", " ") for r in raw)
        return Corpus(tuple(names), tuple([name] * len(names)), DEFAULT_TEMPLATES, name)
    raise CorpusError(f"preset: unknown preset {name!r}; choose from {preset_names()}")


def preset_names() -> list[str]:
    cats = list(dict.fromkeys(builtin_corpus().categories))
    return [*registry.CORPORA.names(), "built-in", *cats, "coco-stuff", "cifar-100"]


def parse_concept_file(data: bytes | str, filename: str = "concepts.txt") -> Corpus:
    """A user list: plain text (one concept per line) or CSV with a 'concept' column and an
    optional 'category' column."""
    if len(data) > MAX_FILE_BYTES:
        raise LimitError(f"{filename}: {len(data) / 1024**2:,.1f} MB is more than a concept list needs "
                         f"(at most {MAX_FILE_BYTES // 1024**2} MB)")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig")
        except UnicodeDecodeError as err:
            raise CorpusError(f"{filename}: not UTF-8 or UTF-16 text ({err.reason})") from err
    if filename.lower().endswith(".csv"):
        try:
            reader = csv.DictReader(io.StringIO(data, newline=""))
            fields = [f.strip().lower() for f in (reader.fieldnames or [])]
            if "concept" not in fields:
                raise CorpusError(f"{filename}: a CSV concept list needs a 'concept' column; "
                                  f"found columns {reader.fieldnames}")
            rows = [{k.strip().lower(): (v or "") for k, v in r.items() if k} for r in reader]
        except csv.Error as err:
            raise CorpusError(f"{filename}: not a readable CSV ({err})") from err
        names = clean_concepts(r["concept"] for r in rows)
        cat_of = {}
        for r in rows:
            key = " ".join(r["concept"].strip().lower().split())
            cat_of.setdefault(key, r.get("category", "").strip() or "custom")
        return Corpus(tuple(names), tuple(cat_of[n] for n in names), DEFAULT_TEMPLATES, filename)
    names = clean_concepts(data.splitlines())
    return Corpus(tuple(names), tuple(["custom"] * len(names)), DEFAULT_TEMPLATES, filename)
