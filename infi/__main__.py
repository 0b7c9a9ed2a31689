"""``python -m infi``: the same Session as the app, headless, with progress on stderr.

  embed     image embeddings for a dataset (cached by content hash)
  concepts  concept scores for a dataset, written as Parquet
  distill   dataset + teacher + encoder + corpus -> a session bundle (.infi) with a student
  tune      apply tuning actions from a JSON file to a bundle
  export    student (safetensors + JSON card), provenance JSON and concept matrix from a bundle
  prg       distill a compact CNN from a CLIP zero-shot teacher, no labels (PRG)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from infi import data as data_mod
from infi.bundle import concept_frame, export_student, load_session, save_session
from infi.cache import ArrayCache, default_cache_dir
from infi.concepts import REGION_MODES
from infi.corpus import Corpus, parse_concept_file, preset, preset_names
from infi.session import Session, load_encoder
from infi.tuning import TuningAction


def progress_printer(label: str):
    def report(done: int, total: int) -> None:
        print(f"\r{label}: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)
    return report


def parse_world(spec: str) -> tuple[str, int, int, float]:
    """'biased:2000:0' or 'shifted:500:7' (split:n:seed[:p])."""
    parts = spec.split(":")
    if len(parts) not in (3, 4):
        raise argparse.ArgumentTypeError("--world takes split:n:seed[:p], e.g. biased:2000:0")
    try:
        return parts[0], int(parts[1]), int(parts[2]), float(parts[3]) if len(parts) == 4 else 0.9
    except ValueError:
        raise argparse.ArgumentTypeError(f"--world: could not read numbers in {spec!r}") from None


def load_dataset(args) -> tuple[data_mod.ImageSet, dict[str, data_mod.ImageSet]]:
    from infi.demo.world import generate_world

    extra = {}
    if args.shifted:
        split, n, seed, p = args.shifted
        extra["shifted"] = data_mod.from_world(generate_world(n, split=split, p=p, seed=seed))
    if args.world:
        split, n, seed, p = args.world
        return data_mod.from_world(generate_world(n, split=split, p=p, seed=seed)), extra
    if args.zip:
        return data_mod.from_zip(Path(args.zip)), extra
    if args.folder:
        return data_mod.from_folder(args.folder), extra
    if getattr(args, "cifar", None):
        return data_mod.from_cifar(args.cifar, "train", args.limit), {
            "test": data_mod.from_cifar(args.cifar, "test", args.limit)}
    raise SystemExit("error: give a dataset with --world, --zip, --folder or --cifar")


def load_corpus(args) -> Corpus:
    if args.corpus_file:
        path = Path(args.corpus_file)
        return parse_concept_file(path.read_bytes(), path.name)
    return preset(args.corpus)


def load_teacher(args, session: Session):
    from infi import teachers

    kind, _, value = args.teacher.partition(":")
    if kind == "demo":
        return teachers.DemoTeacherAdapter()
    if kind == "predictions":
        return teachers.load_predictions(Path(value), Path(value).name,
                                         expected_classes=len(session.class_names or ()) or None)
    if kind == "torchscript":
        print(f"warning: {teachers.TORCHSCRIPT_WARNING}", file=sys.stderr)
        names = tuple(args.class_names.split(",")) if args.class_names else session.class_names
        return teachers.TorchScriptTeacher(value, names, image_size=args.image_size)
    if kind == "hf":
        return teachers.HFClassifierTeacher(value)
    if kind == "zeroshot":
        names = tuple(args.class_names.split(",")) if args.class_names else session.class_names
        return teachers.ClipZeroShotTeacher(load_encoder(value or args.encoder), tuple(names or ()))
    raise SystemExit(f"error: unknown teacher {args.teacher!r}")


def build_session(args, with_teacher: bool) -> Session:
    cache = ArrayCache(None if args.no_cache else default_cache_dir())
    session = Session(cache=cache, seed=args.seed)
    images, extra = load_dataset(args)
    if images.skipped:
        print(f"skipped {len(images.skipped)} file(s): " + "; ".join(
            f"{s.name} ({s.reason})" for s in images.skipped[:5]), file=sys.stderr)
    session.set_dataset(images, extra)
    if with_teacher:
        session.run_teacher(load_teacher(args, session), progress_printer("teacher"))
    session.set_encoder(args.encoder)
    return session


def add_common(p: argparse.ArgumentParser, teacher: bool = True) -> None:
    src = p.add_argument_group("dataset")
    src.add_argument("--world", type=parse_world, help="Shapes World split:n:seed[:p]")
    src.add_argument("--zip", help="a ZIP in ImageFolder layout")
    src.add_argument("--folder", help="a local folder (ImageFolder layout or flat)")
    src.add_argument("--shifted", type=parse_world, help="an extra Shapes World evaluation set")
    p.add_argument("--encoder", default="demo", help="'demo', a CLIP hub id or a local folder")
    p.add_argument("--corpus", default="demo", choices=preset_names(), help="a concept preset")
    p.add_argument("--corpus-file", help="a .txt or .csv concept list (overrides --corpus)")
    p.add_argument("--mode", default="global", choices=REGION_MODES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-cache", action="store_true", help="do not read or write the disk cache")
    if teacher:
        p.add_argument("--teacher", default="demo",
                       help="demo | predictions:FILE | torchscript:FILE | hf:ID | zeroshot[:ENCODER]")
        p.add_argument("--class-names", help="comma-separated class names (TorchScript, zero-shot)")
        p.add_argument("--image-size", type=int, default=224, help="TorchScript input size")


def cmd_embed(args) -> int:
    session = build_session(args, with_teacher=False)
    emb = session.embed(progress_printer("embed"), patches=args.mode != "global")
    print(json.dumps({"images": len(emb.global_), "dim": int(emb.global_.shape[1]),
                      "patches": None if emb.patches is None else list(emb.patches.shape)}))
    return 0


def cmd_concepts(args) -> int:
    session = build_session(args, with_teacher=False)
    matrix = session.extract_concepts(load_corpus(args), args.mode, progress_printer("embed"))
    table = pd.DataFrame(matrix.X, columns=list(matrix.names), index=session.dataset.ids)
    table.index.name = "id"
    table.to_parquet(args.out)
    print(json.dumps({"images": matrix.X.shape[0], "concepts": matrix.X.shape[1], "out": str(args.out)}))
    return 0


def cmd_distill(args) -> int:
    session = build_session(args, with_teacher=True)
    session.extract_concepts(load_corpus(args), args.mode, progress_printer("embed"))
    print("distilling…", file=sys.stderr)
    result = session.distill(n_members=args.members, alpha=args.alpha,
                             validation_share=args.validation_share)
    Path(args.out).write_bytes(save_session(session))
    print(json.dumps({k: v for k, v in result.items() if k != "per_class"}))
    return 0


def cmd_tune(args) -> int:
    session = load_session(Path(args.session).read_bytes())
    try:
        raw = json.loads(Path(args.actions).read_text())
    except json.JSONDecodeError as err:
        raise SystemExit(f"error: {args.actions} is not valid JSON ({err})") from None
    if not isinstance(raw, list):
        raise SystemExit("error: the actions file must hold a JSON list of actions")
    step = session.tune([TuningAction.from_dict(a) for a in raw], label=Path(args.actions).name)
    Path(args.out).write_bytes(save_session(session))
    before, after = step.metrics_before, step.metrics_after
    keys = [k for k in after if k != "per_class" and isinstance(after[k], (int, float))]
    print(json.dumps({k: {"before": before.get(k), "after": after[k]} for k in keys}))
    return 0


def cmd_export(args) -> int:
    session = load_session(Path(args.session).read_bytes())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if session.student is not None:
        written += [str(p) for p in export_student(session.student, session.concepts.names,
                                                   session.class_names, out, session.evaluate())]
        (out / "provenance.json").write_text(session.provenance.to_json())
        written.append(str(out / "provenance.json"))
    concept_frame(session).to_parquet(out / "concepts.parquet")
    written.append(str(out / "concepts.parquet"))
    print(json.dumps({"written": written}))
    return 0


def cmd_prg(args) -> int:
    from infi import prg
    from infi.teachers import ClipZeroShotTeacher, ZERO_SHOT_TEMPLATES

    images, extra = load_dataset(args)
    names = tuple(args.class_names.split(",")) if args.class_names else images.class_names
    if not names:
        raise SystemExit("error: give --class-names for a dataset without class folders")
    size = args.image_size or (images.arrays.shape[1] if images.arrays is not None else 64)
    arrays = images.as_arrays(size)
    teacher = ClipZeroShotTeacher(load_encoder(args.encoder), tuple(names), ZERO_SHOT_TEMPLATES)
    config = prg.PRGConfig(method=args.method, arch=args.arch, epochs=args.epochs,
                           batch_size=args.batch_size, lr=args.lr, w_node=args.w_node,
                           w_edge=args.w_edge, w_relation=args.w_relation, w_pseudo=args.w_pseudo,
                           tau_edge=args.tau_edge, tau_relation=args.tau_relation,
                           kd_temperature=args.kd_temperature, seed=args.seed, device=args.device)

    def report(record: dict) -> None:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()}),
              file=sys.stderr, flush=True)

    run = prg.distill_images(arrays, images.labels, teacher, config, report, progress_printer("teacher"))
    result, figures = run.result, dict(run.figures)
    for name, data in extra.items():
        if data.labels is not None and (data.labels >= 0).any():
            eval_arrays = data.as_arrays(size)
            figures[f"{name}_student_accuracy"] = float(
                (prg.predict_logits(result.model, eval_arrays).argmax(1) == data.labels).mean())
    paths = prg.export(result, tuple(names), size, Path(args.out), figures)
    print(json.dumps({**figures, "written": [str(p) for p in paths.values()]}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m infi", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("embed", help="compute image embeddings")
    add_common(p, teacher=False)
    p.set_defaults(func=cmd_embed)
    p = sub.add_parser("concepts", help="compute concept scores and write them as Parquet")
    add_common(p, teacher=False)
    p.add_argument("--out", required=True, help="output .parquet file")
    p.set_defaults(func=cmd_concepts)
    p = sub.add_parser("distill", help="distill a concept student into a session bundle")
    add_common(p)
    p.add_argument("--members", type=int, default=20, help="ensemble size k")
    p.add_argument("--alpha", type=float, default=1e-4, help="L1 strength λ")
    p.add_argument("--validation-share", type=float, default=0.2)
    p.add_argument("--out", required=True, help="output .infi bundle")
    p.set_defaults(func=cmd_distill)
    p = sub.add_parser("tune", help="apply tuning actions (JSON list) to a bundle")
    p.add_argument("--session", required=True, help="input .infi bundle")
    p.add_argument("--actions", required=True,
                   help='JSON list, e.g. [{"concept": "grass", "kind": "remove", "class_name": "triangle"}]')
    p.add_argument("--out", required=True, help="output .infi bundle")
    p.set_defaults(func=cmd_tune)
    p = sub.add_parser("export", help="export student, provenance and concept matrix from a bundle")
    p.add_argument("--session", required=True, help="input .infi bundle")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("prg", help="distill a compact CNN from a CLIP zero-shot teacher (no labels)")
    src = p.add_argument_group("dataset")
    src.add_argument("--world", type=parse_world, help="Shapes World split:n:seed[:p]")
    src.add_argument("--zip", help="a ZIP in ImageFolder layout")
    src.add_argument("--folder", help="a local folder (ImageFolder layout)")
    src.add_argument("--cifar", help="an extracted cifar-10-batches-py or cifar-100-python folder")
    src.add_argument("--limit", type=int, help="use at most this many CIFAR images per split")
    src.add_argument("--shifted", type=parse_world, help="an extra Shapes World evaluation set")
    p.add_argument("--encoder", default="demo", help="CLIP teacher: 'demo', a hub id or a folder")
    p.add_argument("--class-names", help="comma-separated class names (default: the folders)")
    p.add_argument("--image-size", type=int, help="student input size (default: the dataset's)")
    p.add_argument("--method", default="prg", choices=["prg", "kd", "feature"])
    p.add_argument("--arch", default="small", choices=["small", "resnet18"])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    for name, default in (("w-node", 1.0), ("w-edge", 1.0), ("w-relation", 1.0), ("w-pseudo", 1.0),
                          ("tau-edge", 0.07), ("tau-relation", 0.1), ("kd-temperature", 4.0)):
        p.add_argument(f"--{name}", type=float, default=default)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder for the student")
    p.set_defaults(func=cmd_prg)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    raise SystemExit(main())
