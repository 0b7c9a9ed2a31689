"""Small builders shared by tests: image bytes in many modes, zips, soft teacher problems and
small demo sessions (Shapes World, the demo teacher and encoder)."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from infi.demo.plugin import demo_corpus
from infi.demo.teacher import DemoTeacherAdapter
from infi.demo.world import from_world, generate_world
from infi.session import Session


def png_bytes(mode: str = "RGB", size: int = 16, value: int = 120, fmt: str = "PNG") -> bytes:
    if mode == "I;16":
        img = Image.new("I;16", (size, size), value * 200)
    else:
        img = Image.new(mode, (size, size), color=value if mode in ("L", "P", "I") else None)
        if mode not in ("L", "P", "I"):
            arr = np.full((size, size, len(mode)), value, np.uint8)
            img = Image.fromarray(arr, mode=mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def make_zip(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, target)
    return buf.getvalue()


def soft_problem(n=600, k=12, c=3, seed=0):
    """Random concept scores and a soft teacher driven by concepts 0, 1 and 2."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, k)).astype(np.float32)
    true_w = np.zeros((k, c), np.float32)
    true_w[0, 0], true_w[1, 1], true_w[2, 2] = 8, 8, 8
    logits = (X - 0.5) @ true_w
    P = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return X, P.astype(np.float32)


def demo_session(n=240, members=4, seed=0) -> Session:
    """A distilled session on a small biased world with a shifted evaluation set."""
    s = Session(seed=seed)
    s.set_dataset(from_world(generate_world(n, seed=21)),
                  {"shifted": from_world(generate_world(120, split="shifted", seed=22))})
    s.run_teacher(DemoTeacherAdapter())
    s.set_encoder("demo")
    s.extract_concepts(demo_corpus(), "global")
    s.distill(n_members=members)
    return s


def world_as_zip(n: int, seed: int) -> bytes:
    """A Shapes World saved as an ImageFolder ZIP, i.e. uploaded images the bundle cannot rebuild."""
    world = generate_world(n, seed=seed)
    members = {}
    for i, (image, label) in enumerate(zip(world.images, world.labels)):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "PNG")
        members[f"{world.class_names[label]}/img_{i:03d}.png"] = buf.getvalue()
    return make_zip(members)


def uploaded_session(blob: bytes) -> Session:
    """A distilled session on uploaded images (a ZIP), which a bundle can only reference."""
    from infi.data import from_zip
    from infi.encoders import shared_encoder
    from infi.teachers import ClipZeroShotTeacher

    s = Session(seed=0)
    s.set_dataset(from_zip(blob))
    s.run_teacher(ClipZeroShotTeacher(shared_encoder("demo"), s.dataset.class_names, ("a photo of a {}",)))
    s.set_encoder("demo")
    s.extract_concepts(demo_corpus(), "global")
    s.distill(n_members=2)
    return s


APP = Path(__file__).resolve().parents[1] / "app.py"


def app_with_concepts(n: int, seed: int | None = None):
    """The app (AppTest) after a newcomer's first three steps on Shapes World: load ``n`` images
    (and the shifted split), run the demo teacher, extract the demo concepts."""
    from streamlit.testing.v1 import AppTest

    from infi.ui import state

    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at.number_input(key=state.WORLD_SIZE).set_value(n)
    if seed is not None:
        at.number_input(key=state.WORLD_SEED).set_value(seed)
    at.button(key=state.BTN_LOAD_WORLD).click().run()
    at.button(key=state.BTN_TEACHER).click().run()
    at.switch_page("pages/concepts.py").run()
    at.button(key=state.BTN_EXTRACT).click().run()
    return at


def plain(markdown: str) -> str:
    """Markdown as a person reads it: the backslash escapes Infi puts before user text removed."""
    return re.sub(r"\\(.)", r"\1", markdown)


def world_folder(root: Path, n: int = 60, seed: int = 3, corrupt: bool = True) -> Path:
    """A Shapes World in ImageFolder layout on disk (class/0001.png), plus one corrupt file."""
    world = from_world(generate_world(n, split="biased", seed=seed))
    for i, image_id in enumerate(world.ids):
        folder = root / world.class_names[world.labels[i]]
        folder.mkdir(parents=True, exist_ok=True)
        world.image(i).save(folder / f"{image_id}.png")
    if corrupt:
        (root / world.class_names[0] / "broken.png").write_bytes(b"\x89PNG not really")
    return root


def teacher_file(store, path: Path, confidence: float = 0.9) -> Path:
    """A predictions CSV keyed by a store's ids: the true class at ``confidence``."""
    import pandas as pd

    C = len(store.class_names)
    P = np.full((len(store), C), (1 - confidence) / (C - 1))
    P[np.arange(len(store)), store.labels] = confidence
    pd.DataFrame(P, columns=list(store.class_names)).assign(id=store.ids)[["id", *store.class_names]].to_csv(
        path, index=False)
    return path


def notice(at) -> str:
    """The notice a step left for the next run, as the app shows it (app.py renders it as info
    above every page, also on a page a test switched to)."""
    return " ".join(plain(i.value) for i in at.info)
