"""From a repaired student to a compact CNN, on Shapes World, through the real Session path.

1. Repair: the demo teacher on biased images (each shape on its own background 90% of the time),
   a concept student, the background group removed on every class (the demo story).
2. Compact models (``Session.compact``, KD, mixed views labelled by the source, no label read)
   from the repaired student and from the teacher; accuracy on the shifted split (backgrounds
   independent of shapes), where a kept shortcut shows.
3. Cost: the ViT-B/32 image tower (random weights cost the same) plus the concept head against the
   compact model, parameters and CPU latency at 224x224, same run; ONNX and .pt2 round trips.
4. PRG against KD on a harder task: shape x fill (18 classes) from CLIP zero-shot over those
   names with the demo encoder, ``--seeds`` paired seeds, mean difference and its 95% interval.

Last line: JSON with teacher_shifted_acc, repaired_student_shifted_acc,
compact_from_repaired_shifted_acc, compact_from_teacher_shifted_acc, repair_kept_pts,
repair_loss_pts, param_ratio_vs_tower, speed_ratio_vs_tower, onnx_max_abs_diff, pt2_max_abs_diff,
prg_minus_kd_pts_hard, prg_minus_kd_ci95.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import emit, timed
from scipy import stats
from transformers import CLIPConfig, CLIPVisionModelWithProjection

from infi import prg
from infi.config import PRGConfig
from infi.demo.plugin import demo_corpus
from infi.demo.teacher import DemoTeacherAdapter
from infi.demo.world import from_world, generate_world
from infi.device import pick_device
from infi.encoders import ClipEncoder
from infi.metrics import accuracy
from infi.session import Session
from infi.teachers import ZERO_SHOT_TEMPLATES, ClipZeroShotTeacher
from infi.tuning import TuningAction

EVAL_SEED = 424242


def repaired_session(n_train: int, n_shifted: int) -> Session:
    s = Session(seed=0)
    s.set_dataset(from_world(generate_world(n_train, split="biased", seed=EVAL_SEED)),
                  {"shifted": from_world(generate_world(n_shifted, split="shifted", seed=EVAL_SEED + 1))})
    s.run_teacher(DemoTeacherAdapter())
    s.set_encoder("demo")
    s.extract_concepts(demo_corpus(), "global")
    s.distill()
    s.tune([TuningAction.for_group("background", "remove")])
    return s


def cost(compact_model: torch.nn.Module, n_concepts: int, n_classes: int, arch: str) -> dict:
    """ViT-B/32 image tower + concept head against the compact architecture, CPU, 224x224."""
    vit = CLIPVisionModelWithProjection(CLIPConfig().vision_config).eval()
    tower_params = prg.n_parameters(vit) + n_concepts * n_classes + n_classes
    at_224 = prg.KDStudent(n_classes, arch, 224)
    with torch.inference_mode():
        x = torch.rand(8, 3, 224, 224)
        vit(pixel_values=x)
        vit_ms = float(np.median([timed(vit, pixel_values=x)[1] for _ in range(5)])) * 1000 / 8
    compact_ms = prg.ms_per_image(at_224, 224, batch=8)
    params = prg.n_parameters(compact_model)
    print(f"ViT-B/32 tower + head: {tower_params / 1e6:.1f}M parameters, {vit_ms:.1f} ms/image; compact "
          f"({arch}): {params / 1e6:.2f}M parameters, {compact_ms:.2f} ms/image at 224x224 (CPU)")
    return {"param_ratio_vs_tower": tower_params / params, "speed_ratio_vs_tower": vit_ms / compact_ms}


def hard_task(n_train: int, n_test: int, epochs: int, seeds: int) -> dict:
    """PRG and KD from CLIP zero-shot over shape x fill names, paired by seed."""
    def world(n, seed):
        w = generate_world(n, split="shifted", seed=seed)
        names = [f"{f} {s}" for f, s in zip(w.attributes["fill"], w.attributes["shape"], strict=True)]
        return w.images, names

    train_images, _ = world(n_train, EVAL_SEED + 20)
    test_images, test_names = world(n_test, EVAL_SEED + 21)
    classes = sorted(set(test_names))
    labels = np.array([classes.index(n) for n in test_names])
    teacher = ClipZeroShotTeacher(ClipEncoder.load("demo"), classes, ZERO_SHOT_TEMPLATES)
    targets = prg.teacher_targets(teacher, train_images)
    teacher_acc = accuracy(prg.teacher_targets(teacher, test_images).logits, labels)
    base = PRGConfig(epochs=epochs, patience=epochs)
    accs = {"prg": [], "kd": []}
    for seed in range(seeds):
        for method in accs:
            res = prg.train(train_images, targets, dataclasses.replace(base, method=method, seed=seed))
            accs[method].append(accuracy(prg.predict_logits(res.model, test_images), labels))
    diff = 100 * (np.array(accs["prg"]) - np.array(accs["kd"]))
    half = float(stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    print(f"hard task ({len(classes)} classes, {n_train} unlabeled images, {epochs} epochs): zero-shot teacher "
          f"{teacher_acc:.3f}; PRG {' '.join(f'{a:.3f}' for a in accs['prg'])}; "
          f"KD {' '.join(f'{a:.3f}' for a in accs['kd'])}")
    return {"hard_classes": len(classes), "hard_teacher_acc": teacher_acc, "hard_prg_acc": float(np.mean(accs["prg"])),
            "hard_kd_acc": float(np.mean(accs["kd"])), "prg_minus_kd_pts_hard": float(diff.mean()),
            "prg_minus_kd_ci95": [float(diff.mean() - half), float(diff.mean() + half)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-shifted", type=int, default=1000)
    parser.add_argument("--views", type=int, default=8, help="mixed views per image")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=5, help="paired seeds of the PRG-KD comparison")
    parser.add_argument("--hard-n-train", type=int, default=2000)
    parser.add_argument("--hard-epochs", type=int, default=10)
    parser.add_argument("--only-repair", action="store_true",
                        help="the compact model of the repaired student alone (no teacher source, no hard task)")
    args = parser.parse_args()
    torch.set_num_threads(2)

    s, setup_s = timed(repaired_session, args.n_train, args.n_shifted)
    config = PRGConfig(method="kd", epochs=args.epochs, patience=args.epochs)
    from_student, student_s = timed(s.compact, "student", config, views=args.views)
    model = from_student.result.model
    f = from_student.figures
    figures = {"teacher_shifted_acc": f["shifted_teacher_accuracy"],
               "repaired_student_shifted_acc": f["shifted_source_accuracy"],
               "compact_from_repaired_shifted_acc": f["shifted_compact_accuracy"]}
    teacher_s = 0.0
    if not args.only_repair:
        from_teacher, teacher_s = timed(s.compact, "teacher", config, views=args.views)
        figures["compact_from_teacher_shifted_acc"] = from_teacher.figures["shifted_compact_accuracy"]
    figures["repair_kept_pts"] = 100 * (figures["compact_from_repaired_shifted_acc"] - figures["teacher_shifted_acc"])
    figures["repair_loss_pts"] = 100 * (figures["repaired_student_shifted_acc"]
                                        - figures["compact_from_repaired_shifted_acc"])
    print(f"setup {setup_s:.0f}s; compact from the repaired student {student_s:.0f}s, from the teacher "
          f"{teacher_s:.0f}s ({args.views} views per image, {args.n_train} images, {args.epochs} epochs, "
          f"device {pick_device('auto')})")
    for key, value in figures.items():
        print(f"  {key}: {value:.3f}")
    figures.update(cost(model, s.concepts.X.shape[1], len(s.class_names), config.arch))
    with tempfile.TemporaryDirectory() as tmp:
        prg.export(from_student.result, tuple(s.class_names), from_student.image_size, Path(tmp))
        card = json.loads((Path(tmp) / "prg_student.json").read_text())
    figures.update(card["exports"])
    if not args.only_repair:
        figures.update(hard_task(args.hard_n_train, args.n_shifted, args.hard_epochs, args.seeds))
    figures.update(views_per_image=args.views, n_train=args.n_train, epochs=args.epochs,
                   agreement_with_repaired=f["agreement_with_source"])
    emit(figures)


if __name__ == "__main__":
    main()
