"""The bundled demo encoder: a small transformers ``CLIPModel`` trained on Shapes World.

It loads through exactly the code a real CLIP checkpoint folder uses
(``CLIPModel.from_pretrained(path, local_files_only=True)`` and ``CLIPProcessor``), so every code
path of Infi runs offline on it. The tokenizer is a byte-level BPE laid out like OpenAI CLIP's
(256 byte symbols, the same with ``</w>``, then merges), built with no hub access.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

DEMO_ENCODER_DIR = Path(__file__).resolve().parent / "assets" / "encoder"
IMAGE_SIZE = 64
PATCH_SIZE = 8
MAX_TEXT_TOKENS = 32
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# CLIP's pre-tokenizer pattern (contractions, letters, single digits, other symbols).
_CLIP_PATTERN = (
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|"""
    r"""[^\s\p{L}\p{N}]+"""
)
# One prompt per attribute value for zero-shot evaluation of the demo encoder.
ATTRIBUTE_PROMPTS: dict[str, str] = {
    "shape": "a photo of a {}",
    "colour": "a photo of a {} shape",
    "fill": "a photo of a {} shape",
    "size": "a photo of a {} shape",
    "background": "a photo of a shape on {}",
}


def train_tokenizer(texts: Iterable[str], merges: int = 700) -> CLIPTokenizer:
    """Train a CLIP-layout byte-level BPE on ``texts`` and wrap it as a ``CLIPTokenizer``."""
    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    bpe.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_CLIP_PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    trainer = trainers.BpeTrainer(
        vocab_size=2 * len(alphabet) + merges,
        initial_alphabet=alphabet,
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    bpe.train_from_iterator(list(texts), trainer=trainer)
    learned = json.loads(bpe.to_str())["model"]["merges"]
    pairs = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learned]
    vocab_tokens = alphabet + [a + "</w>" for a in alphabet]
    seen = set(vocab_tokens)
    kept = []
    for a, b in pairs:
        if a in seen and b in seen and a + b not in seen:
            vocab_tokens.append(a + b)
            seen.add(a + b)
            kept.append((a, b))
    vocab_tokens += [BOS, EOS]
    vocab = {tok: i for i, tok in enumerate(vocab_tokens)}
    return CLIPTokenizer(vocab=vocab, merges=kept, model_max_length=MAX_TEXT_TOKENS)


def build_config(tokenizer: CLIPTokenizer, width: int = 128, vision_layers: int = 4,
                 text_layers: int = 3, projection_dim: int = 128) -> CLIPConfig:
    """A small CLIP config for 64x64 images; token ids come from ``tokenizer``."""
    vocab_size = len(tokenizer)
    text = dict(
        vocab_size=vocab_size, hidden_size=width, intermediate_size=4 * width,
        num_hidden_layers=text_layers, num_attention_heads=4,
        max_position_embeddings=MAX_TEXT_TOKENS,
        bos_token_id=tokenizer.convert_tokens_to_ids(BOS),
        eos_token_id=tokenizer.convert_tokens_to_ids(EOS),
        pad_token_id=tokenizer.convert_tokens_to_ids(EOS),
    )
    vision = dict(
        hidden_size=width, intermediate_size=4 * width, num_hidden_layers=vision_layers,
        num_attention_heads=4, image_size=IMAGE_SIZE, patch_size=PATCH_SIZE,
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)


def build_image_processor() -> CLIPImageProcessor:
    """The processor for 64x64 inputs, CLIP's normalization constants."""
    return CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )


def save_encoder(model: CLIPModel, tokenizer: CLIPTokenizer, path: Path) -> None:
    """Write model (safetensors), tokenizer and processor the way a hub CLIP folder holds them."""
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    CLIPProcessor(image_processor=build_image_processor(), tokenizer=tokenizer).save_pretrained(path)


def load_demo_encoder(path: Path | str = DEMO_ENCODER_DIR) -> tuple[CLIPModel, CLIPProcessor]:
    """Load the bundled encoder offline, through the same calls as any CLIP folder."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"The demo encoder is missing at {path}; rebuild it with "
            "`python -m infi.demo.train_encoder`."
        )
    model = CLIPModel.from_pretrained(path, local_files_only=True)
    processor = CLIPProcessor.from_pretrained(path, local_files_only=True)
    model.eval()
    return model, processor
