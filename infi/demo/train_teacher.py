"""Train the bundled demo teacher on the biased split: ``python -m infi.demo.train_teacher``.
``--scenario colour`` (fill, size, colour+background) trains a classroom scenario's teacher
instead, into ``assets/teachers/<scenario>`` (``infi.demo.scenarios``), with that scenario's
recipe (``RECIPES``: shortcut p, images, epochs, network width, the checkpoint rule).

The teacher must be good on biased data yet lean on the planted shortcut. Shape is learned more
slowly than the shortcut, so several times per epoch we measure accuracy on held-out biased and
shifted images (training-reserved seeds) and keep the first checkpoint where the biased accuracy
reaches ``min_biased`` while the shifted accuracy is at least ``min_gap`` lower; failing that, the
checkpoint with the best biased accuracy among those with the largest gap.
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
from infi.demo.world import generate_world
from infi.metrics import accuracy

TRAIN_SEED = 2000  # world seeds >= 1000 are reserved for training the bundled models
WIDE, NARROW = (16, 32, 64, 128), (8, 16, 32, 64)
# Per scenario: the original background teacher as it was trained; the classroom teachers are
# narrower (300 KB each) and see a stronger shortcut where the cue is weak (two sizes).
RECIPES: dict[str, dict] = {
    "background": {"p": 0.9, "images": 12000, "epochs": 10, "channels": WIDE, "checks": 1,
                   "min_biased": 0.96, "min_gap": 0.1},
    "colour": {"p": 0.9, "images": 6000, "epochs": 6, "channels": NARROW, "checks": 3,
               "min_biased": 0.94, "min_gap": 0.2},
    "fill": {"p": 0.97, "images": 6000, "epochs": 6, "channels": NARROW, "checks": 3,
             "min_biased": 0.95, "min_gap": 0.25},
    "size": {"p": 0.97, "images": 6000, "epochs": 6, "channels": NARROW, "checks": 3,
             "min_biased": 0.95, "min_gap": 0.25},
    "colour+background": {"p": 0.95, "images": 6000, "epochs": 6, "channels": NARROW, "checks": 3,
                          "min_biased": 0.94, "min_gap": 0.2},
}


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
    parser.add_argument("--images", type=int, help="training images (default: the scenario's recipe)")
    parser.add_argument("--p", type=float, help="shortcut probability of the biased split (recipe)")
    parser.add_argument("--epochs", type=int, help="(recipe)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--min-biased", type=float, help="(recipe)")
    parser.add_argument("--min-gap", type=float, help="(recipe)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    recipe = RECIPES[args.scenario]
    for key in ("images", "p", "epochs", "min_biased", "min_gap"):
        if getattr(args, key) is None:
            setattr(args, key, recipe[key])
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    out = args.out or teacher_dir(args.scenario)
    train = generate_world(args.images, "biased", p=args.p, seed=TRAIN_SEED, scenario=args.scenario)
    val_biased = generate_world(1000, "biased", p=args.p, seed=TRAIN_SEED + 1, scenario=args.scenario)
    val_shifted = generate_world(1000, "shifted", seed=TRAIN_SEED + 2, scenario=args.scenario)
    x_all, y_all = train.images, torch.as_tensor(train.labels).to(args.device)

    channels = recipe["channels"]
    model = ShapesCNN(len(train.class_names), channels).to(args.device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = len(x_all) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr,
                                                total_steps=args.epochs * steps_per_epoch)
    history, snapshots = [], []
    check_every = max(1, steps_per_epoch // recipe["checks"])
    t0 = time.time()
    step = 0
    for _ in range(args.epochs):
        order = rng.permutation(len(x_all))
        for s in range(steps_per_epoch):
            model.train()
            idx = order[s * args.batch:(s + 1) * args.batch]
            loss = F.cross_entropy(model(to_input(x_all[idx]).to(args.device)), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % check_every and s != steps_per_epoch - 1:
                continue
            acc_b = accuracy(logits(model, val_biased.images, args.device), val_biased.labels)
            acc_s = accuracy(logits(model, val_shifted.images, args.device), val_shifted.labels)
            history.append({"epoch": round(step / steps_per_epoch, 2), "biased": round(acc_b, 4),
                            "shifted": round(acc_s, 4)})
            snapshots.append(copy.deepcopy(model.state_dict()))
            log(f"epoch {step / steps_per_epoch:.2f}: loss {loss.item():.3f} biased {acc_b:.3f} "
                f"shifted {acc_s:.3f} ({time.time() - t0:.0f}s)")

    chosen_at = next((i for i, h in enumerate(history) if h["biased"] >= args.min_biased
                      and h["biased"] - h["shifted"] >= args.min_gap), None)
    if chosen_at is None:
        good = [i for i, h in enumerate(history) if h["biased"] >= 0.95] or list(range(len(history)))
        chosen_at = max(good, key=lambda i: (history[i]["biased"] - history[i]["shifted"] >= 0.1,
                                             history[i]["biased"]))
    chosen = history[chosen_at]
    model.load_state_dict(snapshots[chosen_at])
    model = model.cpu()
    config = {
        "architecture": "ShapesCNN",
        "channels": list(channels),
        "class_names": list(train.class_names),
        "image_size": 64,
        "record": {"scenario": args.scenario, "p": args.p, "train_images": args.images, "train_seed": TRAIN_SEED,
                   "chosen_epoch": chosen["epoch"], "history": history},
    }
    save_teacher(model, config, out)
    log(f"kept epoch {chosen['epoch']} ({chosen}); saved to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
