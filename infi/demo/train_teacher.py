"""Train the bundled demo teacher on the biased split: ``python -m infi.demo.train_teacher``.
``--scenario colour`` (fill, size, colour+fill) trains a classroom scenario's teacher instead,
into ``assets/teachers/<scenario>`` (``infi.demo.scenarios``).

The teacher must be good on biased data yet lean on the background shortcut. Shape is learned
more slowly than background, so after every epoch we measure accuracy on held-out biased and
shifted images (training-reserved seeds) and keep the first epoch where the biased accuracy
reaches ``--min-biased`` while the shifted accuracy is at least ``--min-gap`` lower; failing that,
the epoch with the best biased accuracy among those with the largest gap.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from infi.demo.scenarios import SCENARIO_NAMES
from infi.demo.teacher import DEMO_TEACHER_DIR, ShapesCNN, save_teacher, teacher_dir, to_input
from infi.demo.world import SHAPES, generate_world
from infi.metrics import accuracy

TRAIN_SEED = 2000  # world seeds >= 1000 are reserved for training the bundled models


@torch.inference_mode()
def logits(model: ShapesCNN, images: np.ndarray, device: str = "cpu") -> np.ndarray:
    """The network's class scores [N, C] for uint8 images, in batches of 512."""
    model.eval()
    return torch.cat([model(to_input(images[i:i + 512]).to(device)).cpu()
                      for i in range(0, len(images), 512)]).numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help=f"default: {DEMO_TEACHER_DIR} (the scenario's folder for others)")
    parser.add_argument("--scenario", default="background", choices=SCENARIO_NAMES,
                        help="the planted shortcut of the biased split it trains on")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda to train on a GPU")
    parser.add_argument("--images", type=int, default=12000)
    parser.add_argument("--p", type=float, default=0.9)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--min-biased", type=float, default=0.96)
    parser.add_argument("--min-gap", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    out = args.out or teacher_dir(args.scenario)
    train = generate_world(args.images, "biased", p=args.p, seed=TRAIN_SEED, scenario=args.scenario)
    val_biased = generate_world(1000, "biased", p=args.p, seed=TRAIN_SEED + 1, scenario=args.scenario)
    val_shifted = generate_world(1000, "shifted", seed=TRAIN_SEED + 2, scenario=args.scenario)
    x_all, y_all = train.images, torch.as_tensor(train.labels).to(args.device)

    channels = (16, 32, 64, 128)
    model = ShapesCNN(len(SHAPES), channels).to(args.device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = len(x_all) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr,
                                                total_steps=args.epochs * steps_per_epoch)
    history, snapshots = [], []
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(x_all))
        for s in range(steps_per_epoch):
            idx = order[s * args.batch:(s + 1) * args.batch]
            loss = F.cross_entropy(model(to_input(x_all[idx]).to(args.device)), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc_b = accuracy(logits(model, val_biased.images, args.device), val_biased.labels)
        acc_s = accuracy(logits(model, val_shifted.images, args.device), val_shifted.labels)
        history.append({"epoch": epoch + 1, "biased": round(acc_b, 4), "shifted": round(acc_s, 4)})
        snapshots.append(copy.deepcopy(model.state_dict()))
        log(f"epoch {epoch + 1}: loss {loss.item():.3f} biased {acc_b:.3f} shifted {acc_s:.3f} "
            f"({time.time() - t0:.0f}s)")

    chosen = next((h for h in history if h["biased"] >= args.min_biased
                   and h["biased"] - h["shifted"] >= args.min_gap), None)
    if chosen is None:
        good = [h for h in history if h["biased"] >= 0.95] or history
        chosen = max(good, key=lambda h: (h["biased"] - h["shifted"] >= 0.1, h["biased"]))
    model.load_state_dict(snapshots[chosen["epoch"] - 1])
    model = model.cpu()
    config = {
        "architecture": "ShapesCNN",
        "channels": list(channels),
        "class_names": list(SHAPES),
        "image_size": 64,
        "record": {"scenario": args.scenario, "p": args.p, "train_images": args.images, "train_seed": TRAIN_SEED,
                   "chosen_epoch": chosen["epoch"], "history": history},
    }
    save_teacher(model, config, out)
    log(f"kept epoch {chosen['epoch']} ({chosen}); saved to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
