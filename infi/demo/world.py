"""Shapes World: a seeded procedural image world whose concepts are known.

Every image shows one outlined shape (a colour, a fill, a size) on a textured background, with its
attribute row, an object mask and a caption. The ``biased`` split pairs each shape with its own
background with probability ``p`` (a shortcut a teacher can learn); the ``shifted`` split draws the
background independently, so a shortcut shows up as lost accuracy there. Image ``i`` depends only on
``(seed, split, p, i)``, so a smaller world is always a prefix of a larger one with the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from infi.data import ImageSet, from_arrays
from infi.demo.scenarios import BACKGROUND_SHORTCUT, plant
from infi.demo.scenarios import scenario as get_scenario
from infi.limits import Budget

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "hexagon")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 175, 55),
    "blue": (35, 70, 225),
    "yellow": (245, 215, 30),
    "purple": (135, 50, 185),
    "orange": (245, 135, 20),
}
FILLS: tuple[str, ...] = ("solid", "striped", "dotted")
SIZES: tuple[str, ...] = ("small", "large")
BACKGROUNDS: tuple[str, ...] = ("grass", "sky", "sand", "water", "brick", "plain")
ATTRIBUTES: tuple[str, ...] = ("shape", "colour", "fill", "size", "background")
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "colour": tuple(COLOURS),
    "fill": FILLS,
    "size": SIZES,
    "background": BACKGROUNDS,
}
# The shortcut of the biased split of the original scenario: each shape's own background.
SHORTCUT: dict[str, str] = BACKGROUND_SHORTCUT
SPLITS: tuple[str, ...] = ("biased", "shifted")
MIN_IMAGE_SIZE = 32

_CAPTION_TEMPLATES: tuple[str, ...] = (
    "a {size} {colour} {fill} {shape} on {background}",
    "a photo of a {size} {colour} {fill} {shape} over {background}",
    "a {colour} {shape} with a {fill} pattern, {size}, on a {background} background",
    "{background} background with a {size} {fill} {colour} {shape}",
    "an image of a {fill} {colour} {shape} that is {size}, on {background}",
    "a {size} {shape}, {fill} and {colour}, in front of {background}",
)
_OUTLINE = np.array((25, 25, 25), dtype=np.float32)
_SUPERSAMPLE = 4


@dataclass
class World:
    """A generated Shapes World: images [N,H,W,3] uint8, object masks [N,H,W] bool, attributes."""

    images: np.ndarray
    masks: np.ndarray
    attributes: pd.DataFrame
    split: str
    seed: int
    p: float
    class_names: tuple[str, ...] = field(default=SHAPES)
    scenario: str = "background"  # the planted shortcut(s) of the biased split (infi.demo.scenarios)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def labels(self) -> np.ndarray:
        """Class index of each image: the demo task's label is the shape."""
        index = {name: i for i, name in enumerate(self.class_names)}
        return self.attributes["shape"].map(index).to_numpy(dtype=np.int64)

    @property
    def captions(self) -> list[str]:
        return self.attributes["caption"].tolist()

    @property
    def ids(self) -> list[str]:
        return self.attributes["id"].tolist()

    def image(self, i: int) -> Image.Image:
        return Image.fromarray(self.images[i])


def _check_values(name: str, given: Iterable[str] | None, allowed: Sequence[str]) -> tuple[str, ...]:
    if given is None:
        return tuple(allowed)
    values = tuple(given)
    if not values:
        raise ValueError(f"{name}: at least one value is needed; choose from {list(allowed)}")
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(f"{name}: unknown value(s) {unknown}; choose from {list(allowed)}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name}: duplicate values in {list(values)}")
    return values


def validate_parameters(n: int, split: str, p: float, image_size: int) -> None:
    """Raise a ValueError naming the first bad generator parameter."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"n: the number of images must be a positive integer, got {n!r}")
    Budget.current().check("max_world_images", n, "Shapes World: the number of images")
    if split not in SPLITS:
        raise ValueError(f"split: unknown split {split!r}; choose from {list(SPLITS)}")
    if not isinstance(p, (int, float)) or not math.isfinite(p) or not 0.0 <= p <= 1.0:
        raise ValueError(f"p: the shortcut probability must lie in [0, 1], got {p!r}")
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, (int, np.integer))
        or image_size < MIN_IMAGE_SIZE
    ):
        raise ValueError(
            f"image_size: images must be at least {MIN_IMAGE_SIZE} pixels wide, got {image_size!r}"
        )


def generate_world(
    n: int,
    split: str = "biased",
    p: float = 0.9,
    seed: int = 0,
    image_size: int = 64,
    shapes: Iterable[str] | None = None,
    colours: Iterable[str] | None = None,
    fills: Iterable[str] | None = None,
    sizes: Iterable[str] | None = None,
    backgrounds: Iterable[str] | None = None,
    scenario: str = "background",
) -> World:
    """Generate ``n`` images of the world; the same arguments always give the same world.

    ``p`` is the probability that a shape appears on its own background (``SHORTCUT``) in the
    biased split; otherwise the background is drawn from the other allowed ones. It is ignored by
    the shifted split, where the background is uniform and independent of the shape. Another
    ``scenario`` (``infi.demo.scenarios``) plants its own shortcut instead, with the same ``p``.
    """
    validate_parameters(n, split, p, image_size)
    planted = get_scenario(scenario).planted
    if shapes is None:  # a scenario may draw only some shapes (size: circles and hexagons)
        shapes = get_scenario(scenario).shapes
    allowed = {
        "shape": _check_values("shapes", shapes, SHAPES),
        "colour": _check_values("colours", colours, tuple(COLOURS)),
        "fill": _check_values("fills", fills, FILLS),
        "size": _check_values("sizes", sizes, SIZES),
        "background": _check_values("backgrounds", backgrounds, BACKGROUNDS),
    }
    images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    masks = np.empty((n, image_size, image_size), dtype=bool)
    rows = []
    split_code = SPLITS.index(split)
    for i in range(n):
        rng = np.random.default_rng([seed, split_code, i])
        row = _sample_attributes(rng, allowed, split, p, None if scenario == "background" else planted)
        row["id"] = f"{split}-{seed}-{i:06d}"
        images[i], masks[i], geometry = render(row, image_size, rng)
        row.update(geometry)
        row["caption"] = caption_for(row, rng)
        rows.append(row)
    columns = ["id", *ATTRIBUTES, "cx", "cy", "radius", "rotation", "caption"]
    attributes = pd.DataFrame(rows, columns=columns)
    return World(images, masks, attributes, split=split, seed=seed, p=float(p),
                 class_names=allowed["shape"], scenario=scenario)


def _sample_attributes(
    rng: np.random.Generator, allowed: dict[str, tuple[str, ...]], split: str, p: float, planted=None
) -> dict:
    row = {name: str(rng.choice(allowed[name])) for name in ("shape", "colour", "fill", "size")}
    if planted is not None:  # a scenario other than the original background one
        row["background"] = str(rng.choice(allowed["background"]))
        return plant(row, rng, planted, allowed, p) if split == "biased" else row
    backgrounds = allowed["background"]
    own = SHORTCUT[row["shape"]]
    draw = rng.random()
    if split == "biased" and own in backgrounds:
        others = [b for b in backgrounds if b != own]
        row["background"] = own if (draw < p or not others) else str(rng.choice(others))
    else:
        row["background"] = str(rng.choice(backgrounds))
    return row


def caption_for(row: dict, rng: np.random.Generator) -> str:
    """A caption naming every attribute, from one of several templates."""
    template = _CAPTION_TEMPLATES[int(rng.integers(len(_CAPTION_TEMPLATES)))]
    return template.format(**{k: row[k] for k in ATTRIBUTES})


# --- rendering -------------------------------------------------------------------------------


def _shape_polygon(shape: str, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    def ring(count: int, radii: Sequence[float], offset: float) -> list[tuple[float, float]]:
        pts = []
        for k in range(count * len(radii)):
            angle = offset + rot + 2 * math.pi * k / (count * len(radii))
            rad = r * radii[k % len(radii)]
            pts.append((cx + rad * math.cos(angle), cy + rad * math.sin(angle)))
        return pts

    if shape == "square":
        return ring(4, [1.0], math.pi / 4)
    if shape == "triangle":
        return ring(3, [1.0], -math.pi / 2)
    if shape == "star":
        return ring(5, [1.0, 0.42], -math.pi / 2)
    if shape == "hexagon":
        return ring(6, [1.0], 0.0)
    if shape == "cross":
        a, b = 0.34 * r, 0.95 * r
        base = [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a),
                (-b, a), (-b, -a), (-a, -a)]
        c, s = math.cos(rot), math.sin(rot)
        return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in base]
    raise ValueError(f"shape: unknown shape {shape!r}")


def _shape_masks(shape: str, cx: float, cy: float, r: float, rot: float, size: int,
                 outline: float) -> tuple[np.ndarray, np.ndarray]:
    """Antialiased fill and outline coverage in [0, 1], drawn supersampled then box-filtered."""
    s = _SUPERSAMPLE
    big = size * s
    fill_img = Image.new("L", (big, big), 0)
    line_img = Image.new("L", (big, big), 0)
    fd, ld = ImageDraw.Draw(fill_img), ImageDraw.Draw(line_img)
    width = max(1, int(round(outline * s)))
    if shape == "circle":
        box = [(cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s]
        fd.ellipse(box, fill=255)
        ld.ellipse(box, outline=255, width=width)
    else:
        pts = [(x * s, y * s) for x, y in _shape_polygon(shape, cx, cy, r, rot)]
        fd.polygon(pts, fill=255)
        ld.line(pts + [pts[0], pts[1]], fill=255, width=width, joint="curve")
    box = (size, size)
    fill = np.asarray(fill_img.resize(box, Image.Resampling.BOX), dtype=np.float32) / 255.0
    line = np.asarray(line_img.resize(box, Image.Resampling.BOX), dtype=np.float32) / 255.0
    return fill, line


def _fill_texture(fill: str, colour: tuple[int, int, int], size: int, rng: np.random.Generator,
                  scale: float) -> np.ndarray:
    base = np.empty((size, size, 3), dtype=np.float32)
    base[:] = colour
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    light = np.float32(250.0)
    if fill == "striped":
        period = 5.0 * scale
        phase = rng.uniform(0, period)
        band = ((xx + yy + phase) % period) < 2.0 * scale
        base[band] = light
    elif fill == "dotted":
        period = 6.0 * scale
        ox, oy = rng.uniform(0, period, size=2)
        dx = (xx + ox) % period - period / 2
        dy = (yy + oy) % period - period / 2
        base[(dx * dx + dy * dy) < (1.5 * scale) ** 2] = light
    return base


def _background(name: str, size: int, rng: np.random.Generator, scale: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    noise = rng.normal(0, 1, (size, size, 1)).astype(np.float32)
    if name == "grass":
        img = np.array((70, 140, 45), np.float32) + 18 * noise
        blades = (np.sin(xx * 1.7 / scale + rng.uniform(0, 6)) > 0.6)[..., None]
        img = img + blades * np.array((-20, 25, -10), np.float32)
    elif name == "sky":
        img = np.array((120, 180, 240), np.float32) + (yy / size * 50)[..., None] + 3 * noise
        cx, cy = rng.uniform(0, size, 2)
        cloud = np.exp(-(((xx - cx) / (14 * scale)) ** 2 + ((yy - cy) / (6 * scale)) ** 2))
        img = img + cloud[..., None] * np.array((100, 60, 15), np.float32)
    elif name == "sand":
        img = np.array((222, 196, 140), np.float32) + 14 * noise
        img = img + (np.sin((xx * 0.3 + yy) / (3 * scale) + rng.uniform(0, 6)) * 8)[..., None]
    elif name == "water":
        waves = np.sin(yy / (2.2 * scale) + np.sin(xx / (5 * scale) + rng.uniform(0, 6)) * 1.5)
        img = np.array((30, 95, 160), np.float32) + (waves * 22)[..., None] + 4 * noise
    elif name == "brick":
        img = np.array((165, 72, 50), np.float32) + 8 * noise
        row_h, brick_w = 8 * scale, 14 * scale
        row = np.floor(yy / row_h)
        shift = (row % 2) * brick_w / 2
        mortar = ((yy % row_h) < 1.5 * scale) | (((xx + shift) % brick_w) < 1.5 * scale)
        img[mortar] = np.array((200, 195, 185), np.float32) + 6 * noise[mortar]
    elif name == "plain":
        img = np.full((size, size, 3), 205, np.float32) + 2 * noise
    else:
        raise ValueError(f"background: unknown background {name!r}")
    return img


def render(row: dict, image_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """Draw one image from its attributes; returns (image uint8, object mask bool, geometry)."""
    scale = image_size / 64.0
    lo, hi = (11.0, 14.0) if row["size"] == "small" else (19.0, 23.0)
    radius = float(rng.uniform(lo, hi)) * scale
    margin = radius + 2 * scale
    cx, cy = (float(v) for v in rng.uniform(margin, image_size - margin, size=2))
    rotation = float(rng.uniform(-0.2, 0.2))
    fill_cov, line_cov = _shape_masks(row["shape"], cx, cy, radius, rotation, image_size,
                                      outline=1.6 * scale)
    background = _background(row["background"], image_size, rng, scale)
    texture = _fill_texture(row["fill"], COLOURS[row["colour"]], image_size, rng, scale)
    img = background * (1 - fill_cov[..., None]) + texture * fill_cov[..., None]
    img = img * (1 - line_cov[..., None]) + _OUTLINE * line_cov[..., None]
    image = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    mask = np.maximum(fill_cov, line_cov) >= 0.5
    geometry = {"cx": cx, "cy": cy, "radius": radius, "rotation": rotation}
    return image, mask, geometry


WORLD_SOURCE = "shapes-world"


def from_world(world: World) -> ImageSet:
    """A generated world as an ImageSet whose labels are the shapes; its source description is
    enough to regenerate it (``regenerate``)."""
    source = {"kind": WORLD_SOURCE, "split": world.split, "seed": world.seed, "p": world.p, "n": len(world)}
    if world.scenario != "background":  # the original world's description (and bundles) stay as they were
        source["scenario"] = world.scenario
    return from_arrays(world.ids, world.images, world.labels, world.class_names, source)


def regenerate(source: dict) -> ImageSet:
    """The ImageSet a bundle describes by its source (kind ``shapes-world``), drawn again."""
    images = from_world(generate_world(int(source["n"]), split=source["split"], p=float(source["p"]),
                                       seed=int(source["seed"]), scenario=str(source.get("scenario", "background"))))
    for key in ("exercise", "exercise_run"):  # a classroom exercise's world (infi.demo.exercise) stays one
        if key in source:
            images.source[key] = str(source[key])
    return images
