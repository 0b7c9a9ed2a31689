"""The CLIP-layout tokenizer and small CLIP config built with no hub access."""

from transformers import CLIPModel, CLIPProcessor

from infi.demo.encoder import BOS, EOS, build_config, save_encoder, train_tokenizer


def test_tokenizer_round_trips_and_covers_unseen_words(tmp_path):
    tok = train_tokenizer(["a red circle on grass", "a blue square on sky"] * 20, merges=60)
    ids = tok(["a red circle on grass"])["input_ids"][0]
    assert tok.convert_ids_to_tokens(ids[0]) == BOS and tok.convert_ids_to_tokens(ids[-1]) == EOS
    # Bytes give every word a spelling, even one never seen in training.
    unseen = tok(["zebra"])["input_ids"][0]
    assert tok.unk_token_id not in unseen[1:-1]
    assert tok.decode(unseen, skip_special_tokens=True).strip() == "zebra"


def test_tiny_clip_saves_and_reloads_offline(tmp_path):
    tok = train_tokenizer(["a red circle", "a blue square"] * 10, merges=20)
    config = build_config(tok, width=32, vision_layers=1, text_layers=1, projection_dim=16)
    assert config.text_config.eos_token_id == tok.convert_tokens_to_ids(EOS)
    save_encoder(CLIPModel(config), tok, tmp_path)
    model = CLIPModel.from_pretrained(tmp_path, local_files_only=True)
    processor = CLIPProcessor.from_pretrained(tmp_path, local_files_only=True)
    batch = processor(text=["a red circle"], return_tensors="pt")
    assert model.get_text_features(**batch).pooler_output.shape == (1, 16)
