"""ClipEncoder: image, patch and text embeddings from any transformers CLIP checkpoint.

The bundled demo encoder and a hub checkpoint such as ``openai/clip-vit-base-patch32`` go through
the same ``CLIPModel`` / ``CLIPProcessor`` calls. Patch embeddings follow the path that makes the
CLS token equal ``get_image_features``: vision last hidden state -> post layernorm -> visual
projection.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from infi import registry
from infi.dense import dense_forward
from infi.device import pick_device
from infi.errors import InputError, ModelLoadError
from infi.hub import failure_detail, is_local, load_pretrained

BATCH = 32  # images per forward: on a 2-core CPU 32 ran ViT-B/32 at 19 images/s, 64 at 16
MIN_TOKENS = 64  # fewer than this is no vocabulary (a tokenizer without its tokenizer.json has 2)
DEFAULT_ENCODER = "demo"  # a registered name: the bundled encoder, which works offline
Progress = Callable[[int, int], None]


def project_tokens(model, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(image embedding [B,D], patch embeddings [B,P,D]), projected, not normalized."""
    out = model.vision_model(pixel_values=pixel_values)
    tokens = model.vision_model.post_layernorm(out.last_hidden_state)
    projected = model.visual_projection(tokens)
    return projected[:, 0], projected[:, 1:]


def _crop_size(ip) -> tuple[int, int]:
    crop = ip.crop_size
    get = crop.get if isinstance(crop, dict) else (lambda k: getattr(crop, k, None))
    return int(get("height")), int(get("width"))


def _shortest_edge(ip) -> int | None:
    size = ip.size
    value = size.get("shortest_edge") if isinstance(size, dict) else getattr(size, "shortest_edge", None)
    return int(value) if value else None


def _resize_crop(image: Image.Image | np.ndarray, short: int, crop_h: int, crop_w: int) -> np.ndarray:
    """Resize so the short side is ``short`` (bicubic, antialiased), then centre-crop: uint8 [H, W, 3].

    The resize runs in torch on uint8, as transformers' torchvision-backed CLIP processor does. On
    photos it is within one grey level of the Pillow-backed processor (pure noise: half a level on
    average) and twice as fast as Pillow's bicubic, which matters because preprocessing shares the
    CPU with the forward pass (benchmarks/photo_scale.py)."""
    img = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    if img.mode != "RGB":
        img = img.convert("RGB")
    w, h = img.size
    pixels = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1)[None]
    if min(w, h) != short:
        scale = short / min(w, h)
        w, h = (short, int(h * scale)) if w <= h else (int(w * scale), short)
        pixels = _bicubic(pixels, h, w)
    if w < crop_w or h < crop_h:  # smaller than the crop (an extreme aspect ratio): resize up
        w, h = max(w, crop_w), max(h, crop_h)
        pixels = _bicubic(pixels, h, w)
    left, top = (w - crop_w) // 2, (h - crop_h) // 2
    return pixels[0, :, top:top + crop_h, left:left + crop_w].permute(1, 2, 0).numpy()


def prepare_images(images: Sequence[Image.Image] | np.ndarray, short: int, crop_h: int, crop_w: int) -> np.ndarray:
    """``_resize_crop`` over a batch: uint8 [B, crop_h, crop_w, 3]. Arrays already at the crop size
    of a square crop pass through (a resize to the short side would leave them as they are)."""
    if isinstance(images, np.ndarray) and images.shape[1:3] == (crop_h, crop_w) and short == crop_h == crop_w:
        return np.ascontiguousarray(images)
    if len(images) == 0:
        return np.zeros((0, crop_h, crop_w, 3), np.uint8)
    return np.stack([_resize_crop(im, short, crop_h, crop_w) for im in images])


def _bicubic(pixels: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return F.interpolate(pixels, size=(h, w), mode="bicubic", antialias=True, align_corners=False)


@dataclass
class ImageEmbeddings:
    """L2-normalized global [N,D] and patch [N,P,D] embeddings (patches may be None)."""

    global_: np.ndarray
    patches: np.ndarray | None
    grid: int
    dense: str = "vanilla"  # the last-block method that made the patches (infi.dense)


class ClipEncoder:
    """A CLIP model and processor, batched and under ``torch.inference_mode``."""

    def __init__(self, model, processor, name: str, device: torch.device | None = None):
        self.device = device or pick_device()
        # float32 on CPU (bfloat16 is slower there); half precision on accelerators.
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.model = model.to(self.device, self.dtype).eval()
        self.processor = processor
        self.name = name
        vision = model.config.vision_config
        self.image_size = int(vision.image_size)
        self.patch = int(vision.patch_size)
        self.grid = self.image_size // self.patch

    @classmethod
    def load(cls, name_or_path: str = DEFAULT_ENCODER, device: torch.device | None = None) -> ClipEncoder:
        """Load a registered encoder (``"demo"``), a local folder or a hub id (the only call here
        that may use a network)."""
        from transformers import CLIPModel, CLIPProcessor

        if name_or_path in registry.ENCODERS:  # a bundled encoder, registered by a plug-in
            model, processor = registry.ENCODERS.get(name_or_path)()
            return cls(model, processor, name_or_path, device)
        advice = ("If this machine is offline, use the bundled demo encoder ('demo') or a local folder holding "
                  "a CLIP checkpoint saved with save_pretrained.")
        model = load_pretrained(CLIPModel, name_or_path, "the CLIP checkpoint", advice, ("clip",))
        try:
            processor = CLIPProcessor.from_pretrained(name_or_path, local_files_only=is_local(name_or_path))
        except (OSError, ValueError) as err:  # ValueError: a folder that is not a CLIP checkpoint
            raise ModelLoadError(f"Could not load the CLIP checkpoint {name_or_path!r}: {failure_detail(err)}. "
                                 f"{advice}") from err
        words, vocab = len(processor.tokenizer), int(model.config.text_config.vocab_size)
        if words > vocab or words < MIN_TOKENS:  # a missing tokenizer.json once gave 2 tokens: every prompt alike
            raise ModelLoadError(f"Could not load the CLIP checkpoint {name_or_path!r}: its tokenizer knows "
                                 f"{words} tokens but the text model {vocab}; is tokenizer.json missing? {advice}")
        return cls(model, processor, str(name_or_path), device)

    def crop_spec(self, resolution: int | None = None) -> tuple[int, int, int]:
        """(shortest edge, crop height, crop width) of this checkpoint's preprocessing; ``resolution``
        replaces the crop size (region modes at a higher resolution)."""
        ip = self.processor.image_processor
        crop_h, crop_w = _crop_size(ip)
        short = _shortest_edge(ip) or min(crop_h, crop_w)
        if resolution is not None and resolution != self.image_size:
            crop_h = crop_w = short = int(resolution)
        return short, crop_h, crop_w

    def prepare(self, images: Sequence[Image.Image] | np.ndarray, resolution: int | None = None) -> np.ndarray:
        """The CPU half of preprocessing: each image resized and centre-cropped, uint8 [B, H, W, 3].
        ``infi.store`` runs this in decode workers and hands the crops to ``embed_images(prepared=True)``,
        so both engines share this code, not a copy of it."""
        short, crop_h, crop_w = self.crop_spec(resolution)
        return prepare_images(images, short, crop_h, crop_w)

    def pixel_values(self, images: Sequence[Image.Image] | np.ndarray, resolution: int | None = None,
                     prepared: bool = False) -> torch.Tensor:
        """CLIP preprocessing (shortest edge resize, bicubic; centre crop; rescale; normalize),
        done as one uint8 batch in torch instead of per-image float work in the processor.
        ``resolution`` replaces the checkpoint's crop size (region modes at a higher resolution);
        ``prepared`` images are crops from ``prepare`` already."""
        ip = self.processor.image_processor
        batch = np.ascontiguousarray(images) if prepared else self.prepare(images, resolution)
        x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2)
        x = x.to(self.dtype, memory_format=torch.contiguous_format)
        # (x * rescale - mean) / std as one in-place multiply-add per element
        std = torch.tensor(ip.image_std, device=self.device, dtype=torch.float64).view(1, 3, 1, 1)
        mean = torch.tensor(ip.image_mean, device=self.device, dtype=torch.float64).view(1, 3, 1, 1)
        scale = (float(ip.rescale_factor) / std).to(self.dtype)
        shift = (-mean / std).to(self.dtype)
        return x.mul_(scale).add_(shift)

    @torch.inference_mode()
    def embed_images(self, images: Sequence[Image.Image] | np.ndarray, batch_size: int = BATCH,
                     patches: bool = True, progress: Progress | None = None,
                     dense: str = "vanilla", resolution: int | None = None,
                     prepared: bool = False) -> ImageEmbeddings:
        """L2-normalized global embeddings [N, D] and (with ``patches``) patch embeddings
        [N, P, D] made by the ``dense`` last-block method (``infi.dense``), in one forward pass.
        ``resolution`` (e.g. 448) interpolates the position embeddings for a finer patch grid;
        ``prepared`` images are uint8 crops from ``prepare`` (decoded and resized elsewhere)."""
        if resolution is not None and (resolution < self.image_size or resolution % self.patch):
            raise InputError(f"resolution: {resolution} must be at least {self.image_size} and a multiple "
                             f"of the patch size {self.patch}")
        grid = (resolution or self.image_size) // self.patch
        n = len(images)
        globals_, patch_list = [], []
        # Decode and preprocess each batch just before its forward pass, in this thread: a
        # decode-ahead thread competed with torch's own threads on a 2-core CPU and lost 10-15%
        # of throughput once the resize ran in torch (benchmarks/photo_scale.py: 0.80 vs 0.94).
        for start in range(0, n, batch_size):
            pixels = self.pixel_values(images[start:start + batch_size], resolution, prepared)
            g, p = dense_forward(self.model, pixels, dense, patches, interpolate=grid != self.grid)
            globals_.append(F.normalize(g.float(), dim=-1).cpu())
            if patches:
                patch_list.append(F.normalize(p.float(), dim=-1).cpu())
            if progress:
                progress(min(start + batch_size, n), n)
        g = torch.cat(globals_).numpy() if globals_ else np.zeros((0, self.dim), np.float32)
        p = torch.cat(patch_list).numpy() if patch_list else None
        return ImageEmbeddings(g, p, grid, dense)

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """L2-normalized text embeddings [T,D]; each batch is padded to its longest prompt."""
        out = []
        for start in range(0, len(texts), batch_size):
            batch = self.processor.tokenizer(list(texts[start:start + batch_size]), padding=True,
                                             truncation=True, return_tensors="pt").to(self.device)
            feats = self.model.get_text_features(**batch).pooler_output
            out.append(F.normalize(feats.float(), dim=-1).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.dim), np.float32)

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)


SHARED_MAX = int(os.environ.get("INFI_ENCODER_CACHE", "3"))  # encoders kept loaded at once
_SHARED: OrderedDict[str, ClipEncoder] = OrderedDict()
_SHARED_LOCK = threading.Lock()


def normalize_reference(name_or_path: str) -> str:
    """One spelling per model: a registered name or hub id as given, a local folder as its
    resolved absolute path (six spellings of one folder once loaded six copies)."""
    reference = str(name_or_path).strip()
    if reference in registry.ENCODERS:
        return reference
    folder = Path(reference).expanduser()
    return str(folder.resolve()) if folder.is_dir() else reference


def is_loaded(name_or_path: str) -> bool:
    return normalize_reference(name_or_path) in _SHARED


def shared_encoder(name_or_path: str) -> ClipEncoder:
    """Encoders are read-only models: each is loaded once per process and shared by every
    session. This is the process's one model cache: bounded (least recently used goes first,
    ``INFI_ENCODER_CACHE`` entries) and keyed by the normalized reference."""
    key = normalize_reference(name_or_path)
    with _SHARED_LOCK:
        if key in _SHARED:
            _SHARED.move_to_end(key)
            return _SHARED[key]
    encoder = ClipEncoder.load(key)
    with _SHARED_LOCK:
        _SHARED[key] = encoder
        _SHARED.move_to_end(key)
        while len(_SHARED) > max(1, SHARED_MAX):
            _SHARED.popitem(last=False)
    return encoder
