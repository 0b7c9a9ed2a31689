"""Named plug-ins that core modules look up instead of importing them: encoders, teachers,
concept corpora and dataset regenerators.

A plug-in package registers its pieces from a ``register()`` function named in the
``infi.plugins`` entry-point group (the bundled Shapes World demo is one: see ``pyproject.toml``).
Entry points are read on the first lookup, so ``import infi.session`` loads no plug-in, and a
core module never imports a plug-in by name.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from infi.errors import InputError

T = TypeVar("T")
PLUGIN_GROUP = "infi.plugins"
_loaded = False


class Registry(Generic[T]):
    """Factories by name for one kind of thing (an encoder loader, a teacher, a corpus …)."""

    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> None:
        """Register ``item`` under ``name``; registering the same name again replaces it."""
        self._items[name] = item

    def get(self, name: str) -> T:
        """The item registered as ``name``; InputError listing the known names otherwise."""
        load_plugins()
        if name not in self._items:
            known = ", ".join(sorted(self._items)) or "none"
            raise InputError(f"{self.what}: no {self.what} named {name!r} (known: {known})")
        return self._items[name]

    def names(self) -> list[str]:
        load_plugins()
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._items


# encoder name -> () -> (transformers CLIPModel, CLIPProcessor)
ENCODERS: Registry[Callable[[], tuple]] = Registry("encoder")
# teacher name -> () -> an object with name, class_names and predict_proba(images, progress)
TEACHERS: Registry[Callable[[], object]] = Registry("teacher")
# corpus name -> () -> infi.corpus.Corpus
CORPORA: Registry[Callable[[], object]] = Registry("corpus")
# dataset source kind -> (source description dict) -> infi.data.ImageSet, rebuilt without files
DATASETS: Registry[Callable[[dict], object]] = Registry("dataset source")


def load_plugins() -> None:
    """Call every ``infi.plugins`` entry point's ``register()`` once per process."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for entry in entry_points(group=PLUGIN_GROUP):
        entry.load()()
