"""infi (or python -m infi): the app's pipeline, headless, through the same Session.

  world     write a Shapes World (any classroom scenario) as PNG class folders, or list the scenarios
  embed     embed an image folder or list into a store (Parquet shards + manifest), in process or on Ray
  concepts  concept scores for a dataset, written as Parquet
  distill   dataset + teacher + encoder + corpus -> a session bundle (.infi) with a student
  tune      apply tuning actions from a JSON file to a bundle
  export    student (safetensors + JSON card), provenance JSON and concept matrix from a bundle
  prg       distill a compact CNN from a CLIP zero-shot teacher, no labels (PRG)
  compact   a compact CNN from a saved session's student (edits included), teacher or zero-shot; ONNX + .pt2

Progress goes to stderr, results to stdout as one JSON object. A problem with the input is one
line on stderr and exit code 2; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from infi import data as data_mod
from infi import prg, teachers
from infi.bundle import concept_frame, export_student, load_session, save_session
from infi.cache import ArrayCache, default_cache_dir
from infi.concepts import REGION_MODES
from infi.config import DistillConfig, PRGConfig, TuneConfig
from infi.corpus import Corpus, parse_concept_file, preset, preset_names
from infi.dense import DENSE_METHODS, PLAIN_CLIP_DEFAULT
from infi.encoders import DEFAULT_ENCODER
from infi.errors import InfiError, InputError, MissingFileError
from infi.session import Session
from infi.tuning import TuningAction

PROG = "infi"


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


def world_images(spec: tuple[str, int, int, float], scenario: str = "background") -> data_mod.ImageSet:
    from infi.demo.world import from_world, generate_world

    split, n, seed, p = spec
    try:
        return from_world(generate_world(n, split=split, p=p, seed=seed, scenario=scenario))
    except ValueError as err:  # the generator names the bad parameter
        raise InputError(f"Shapes World {split}:{n}:{seed}:{p} ({scenario}): {err}") from None


def open_store(path: str):
    from infi.store import open_store as open_

    return open_(path, progress=progress_printer("store shards"))


def load_dataset(args) -> tuple[data_mod.ImageSet, dict[str, data_mod.ImageSet]]:
    """The dataset named on the command line, and its evaluation sets."""
    scenario = getattr(args, "scenario", None) or "background"
    extra = {"shifted": world_images(args.shifted, scenario)} if getattr(args, "shifted", None) else {}
    if args.world:
        return world_images(args.world, scenario), extra
    if args.zip:
        return data_mod.from_zip(Path(args.zip)), extra
    if args.folder:
        return data_mod.from_folder(args.folder), extra
    if getattr(args, "cifar", None):
        return data_mod.from_cifar(args.cifar, "train", args.limit), {
            "test": data_mod.from_cifar(args.cifar, "test", args.limit)}
    raise InputError("give a dataset with --world, --zip, --folder" +
                     (" or --cifar" if hasattr(args, "cifar") else "") +
                     (" or --store" if hasattr(args, "store") else ""))


def load_corpus(args) -> Corpus:
    if args.corpus_file:
        path = Path(args.corpus_file)
        if not path.is_file():
            raise MissingFileError(f"--corpus-file: no file at {path}")
        return parse_concept_file(path.read_bytes(), path.name)
    return preset(args.corpus)


def dataset_session(args) -> Session:
    """A session holding the command line's dataset (and evaluation sets)."""
    cache = ArrayCache(None if args.no_cache else default_cache_dir())
    session = Session(cache=cache, seed=args.seed)
    if getattr(args, "store", None):
        if args.world or args.zip or args.folder or args.shifted:
            raise InputError("--store is the dataset: give it alone, without --world, --zip, --folder or --shifted")
        session.open_store(open_store(args.store))
        return session
    images, extra = load_dataset(args)
    if images.skipped:
        print(f"skipped {len(images.skipped)} file(s): " + "; ".join(
            f"{s.name} ({s.reason})" for s in images.skipped[:5]), file=sys.stderr)
    session.set_dataset(images, extra)
    return session


def build_session(args, with_teacher: bool) -> Session:
    session = dataset_session(args)
    if args.encoder is None:
        args.encoder = session.store.encoder if session.store is not None else DEFAULT_ENCODER
    if with_teacher:
        classes = session.dataset.class_names if session.dataset is not None else session.store.class_names
        teacher = teachers.from_spec(args.teacher, classes,
                                     class_names=args.class_names, image_size=args.image_size,
                                     default_encoder=args.encoder)
        if isinstance(teacher, teachers.TorchScriptTeacher):
            print(f"warning: {teachers.TORCHSCRIPT_WARNING}", file=sys.stderr)
        session.run_teacher(teacher, progress_printer("teacher"))
        for note in session.teacher_notes:
            print(f"note: {note}", file=sys.stderr)
    session.set_encoder(args.encoder)
    return session


def writable(path: str | Path) -> Path:
    """An output path whose folder exists (named in the error otherwise)."""
    path = Path(path)
    if not path.parent.exists():
        raise MissingFileError(f"{path}: the folder {path.parent} does not exist")
    return path


def add_dataset(p: argparse.ArgumentParser, cifar: bool = False) -> None:
    src = p.add_argument_group("dataset")
    src.add_argument("--world", type=parse_world, help="Shapes World split:n:seed[:p]")
    src.add_argument("--zip", help="a ZIP in ImageFolder layout")
    src.add_argument("--folder", help="a local folder (ImageFolder layout or flat)")
    if cifar:
        src.add_argument("--cifar", help="an extracted cifar-10-batches-py or cifar-100-python folder")
        src.add_argument("--limit", type=int, help="use at most this many CIFAR images per split")
    src.add_argument("--shifted", type=parse_world,
                     help="a Shapes World evaluation set named 'shifted', split:n:seed[:p]")
    src.add_argument("--scenario", choices=scenario_names(), default="background",
                     help="the classroom scenario of --world and --shifted (its teacher: demo-<scenario>, "
                          "see `infi world --list`)")


def add_common(p: argparse.ArgumentParser, teacher: bool = True) -> None:
    add_dataset(p)
    p.add_argument("--store", help="an embedding store folder from `infi embed` as the dataset (embeddings, no "
                                   "pixels; the teacher is then a predictions file keyed by its ids, or zeroshot)")
    p.add_argument("--encoder", default=None,
                   help="a registered encoder ('demo', the default), a CLIP hub id or a local folder; with "
                        "--store, the store's")
    p.add_argument("--corpus", default="demo", choices=preset_names(), help="a concept preset")
    p.add_argument("--corpus-file", help="a .txt or .csv concept list (overrides --corpus)")
    p.add_argument("--mode", default="global", choices=REGION_MODES)
    p.add_argument("--dense", choices=DENSE_METHODS,
                   help="how region modes make patch embeddings (default: vanilla for the demo encoder, "
                        f"{PLAIN_CLIP_DEFAULT} for a CLIP checkpoint)")
    p.add_argument("--resolution", type=int,
                   help="region modes' input size, a multiple of the patch size such as 320 or 448 (position "
                        "embeddings interpolated; 2.2x and 4.3x the time of 224 for ViT-B/32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-cache", action="store_true", help="do not read or write the disk cache")
    if teacher:
        p.add_argument("--teacher", default="demo", help=teachers.SPEC_HELP)
        p.add_argument("--class-names", help="comma-separated class names (TorchScript, .npy "
                                             "predictions, zero-shot); default: the dataset's")
        p.add_argument("--image-size", type=int, default=224, help="TorchScript input size")


def cmd_embed(args) -> int:
    """Embed images into a store: Parquet shards of ids, embeddings (and scores) + a manifest."""
    from infi.bulk_embed import embed_to_store, list_images, rate_printer

    corpus = load_corpus(args) if args.scores or args.corpus_file else None
    if args.world:
        if args.engine == "ray":
            raise InputError("--world images are generated in memory; --engine ray reads files (give --images)")
        refs = world_refs(world_images(args.world), Path(args.out))
    elif args.images:
        refs = list_images(args.images)
    else:
        raise InputError("give the images with --images (a folder, a .txt list of paths, or a .csv / .parquet "
                         "with a 'path' column) or --world")
    print(f"embedding {len(refs):,} images with {args.encoder} ({args.engine} engine)", file=sys.stderr)
    options = {k: v for k, v in (("model_workers", args.model_workers), ("gpus_per_worker", args.gpus_per_worker),
                                 ("model_threads", args.model_threads), ("num_cpus", args.num_cpus))
               if v is not None}
    if options and args.engine != "ray":
        raise InputError(f"{', '.join('--' + k.replace('_', '-') for k in options)}: options of --engine ray")
    manifest = embed_to_store(refs, args.out, args.encoder, corpus, args.mode, args.dense, args.resolution,
                              args.engine, args.batch_size, args.overwrite, rate_printer("embed"), **options)
    if manifest["skipped_count"]:
        print(f"skipped {manifest['skipped_count']} file(s): " + "; ".join(
            f"{s['id']} ({s['reason']})" for s in manifest["skipped"][:5]), file=sys.stderr)
    print(json.dumps({k: manifest[k] for k in ("count", "skipped_count", "encoder", "dim", "mode", "engine",
                                                  "images_per_second", "plan")} | {"out": str(args.out)}))
    return 0


def scenario_names() -> tuple[str, ...]:
    from infi.demo.scenarios import SCENARIO_NAMES

    return SCENARIO_NAMES


def cmd_world(args) -> int:
    """Write a Shapes World as class folders of PNGs plus attributes.csv, or list the scenarios."""
    from infi.demo.scenarios import SCENARIOS, teacher_name
    from infi.demo.world import SHAPES, generate_world

    if args.list:
        print(json.dumps([{"scenario": s.name, "title": s.title, "teacher": teacher_name(s.name),
                           "classes": list(s.shapes or SHAPES), "p": s.p} for s in SCENARIOS.values()]))
        return 0
    if not args.out:
        raise InputError("world: give --out FOLDER (or --list)")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"--out: {out} is not empty; choose a new folder")
    p = SCENARIOS[args.scenario].p if args.p is None else args.p
    try:
        world = generate_world(args.n, split=args.split, p=p, seed=args.seed, scenario=args.scenario)
    except ValueError as err:
        raise InputError(f"world: {err}") from None
    report = progress_printer("images written")
    for i, image_id in enumerate(world.ids):
        path = out / world.attributes["shape"].iloc[i] / f"{image_id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        world.image(i).save(path)
        if (i + 1) % 200 == 0 or i + 1 == len(world):
            report(i + 1, len(world))
    world.attributes.to_csv(out / "attributes.csv", index=False)
    print(json.dumps({"images": len(world), "scenario": args.scenario, "split": args.split, "seed": args.seed,
                      "p": p, "teacher": teacher_name(args.scenario), "out": str(out)}))
    return 0


def world_refs(images: data_mod.ImageSet, out: Path):
    """A generated world as files beside the store (``<out>-images``), so the store can show them."""
    from infi.bulk_embed import ImageRef

    folder = (out.parent / f"{out.name}-images").resolve()  # absolute: the app may run from elsewhere
    refs = []
    for i, image_id in enumerate(images.ids):
        path = folder / f"{image_id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        images.image(i).save(path)
        label = images.class_names[images.labels[i]] if images.labels is not None and images.labels[i] >= 0 else None
        refs.append(ImageRef(image_id, str(path), label))
    return refs


def cmd_concepts(args) -> int:
    out = writable(args.out)
    session = build_session(args, with_teacher=False)
    matrix = session.extract_concepts(load_corpus(args), args.mode, progress_printer("embed"), args.dense,
                                      args.resolution)
    concept_frame(session).to_parquet(out)
    print(json.dumps({"images": matrix.X.shape[0], "concepts": matrix.X.shape[1], "out": str(out)}))
    return 0


def cmd_distill(args) -> int:
    out = writable(args.out)
    defaults = DistillConfig()
    if args.alpha != defaults.alpha and args.nec == defaults.nec:
        print(f"note: --alpha {args.alpha:g} given, so λ is fixed and no NEC is searched "
              "(give --nec N to search λ for N effective concepts per class instead)", file=sys.stderr)
        args.nec = None
    config = DistillConfig.from_namespace(args)
    session = build_session(args, with_teacher=True)
    session.extract_concepts(load_corpus(args), args.mode, progress_printer("embed"), args.dense,
                             args.resolution)
    print("distilling…", file=sys.stderr)
    result = session.distill(config)
    out.write_bytes(save_session(session))
    print(json.dumps({k: v for k, v in result.items() if k != "per_class"}))
    return 0


def read_bundle(path: str) -> Session:
    if not Path(path).is_file():
        raise MissingFileError(f"--session: no file at {path}")
    return load_session(Path(path).read_bytes())


def cmd_tune(args) -> int:
    session = read_bundle(args.session)
    out = writable(args.out)
    if not Path(args.actions).is_file():
        raise MissingFileError(f"--actions: no file at {args.actions}")
    try:
        raw = json.loads(Path(args.actions).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{args.actions} is not valid JSON ({err})") from None
    if not isinstance(raw, list) or not all(isinstance(a, dict) for a in raw):
        raise InputError("the actions file must hold a JSON list of action objects")
    config = TuneConfig.from_namespace(args)
    step = session.tune([TuningAction.from_dict(a) for a in raw], label=Path(args.actions).name,
                        hold_others=config.hold_others)
    out.write_bytes(save_session(session))
    before, after = step.metrics_before, step.metrics_after
    keys = [k for k in after if k != "per_class" and isinstance(after[k], (int, float))]
    print(json.dumps({"metrics": {k: {"before": before.get(k), "after": after[k]} for k in keys},
                      "hold_others": config.hold_others, "took_over": session.compensation(-1)}))
    return 0


def cmd_export(args) -> int:
    session = read_bundle(args.session)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out: {out} is a file; give a folder for the exported files")
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
    config = PRGConfig.from_namespace(args)
    session = dataset_session(args)
    session.set_encoder(args.encoder)

    def report(record: dict) -> None:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()}),
              file=sys.stderr, flush=True)

    run = session.run_prg(config, class_names=args.class_names, image_size=args.image_size,
                          progress=report, teacher_progress=progress_printer("teacher"))
    paths = prg.export(run.result, run.targets.class_names, run.image_size, Path(args.out), run.figures)
    print(json.dumps({**run.figures, "written": [str(p) for p in paths.values()]}))
    return 0


def cmd_compact(args) -> int:
    """A compact CNN from a saved session's CLIP zero-shot, teacher or (edited) concept student."""
    config = PRGConfig.from_namespace(args)
    session = read_bundle(args.session)
    if session.dataset is None:
        raise InputError(f"{args.session}: its images are referenced, not stored; the compact model needs "
                         "them (a Shapes World bundle regenerates them; otherwise use the app with the images)")

    def report(record: dict) -> None:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()}),
              file=sys.stderr, flush=True)

    def labelled(done: int, total: int) -> None:
        print(json.dumps({"mixed_views_labelled": done, "of": total}), file=sys.stderr, flush=True)

    run = session.compact(args.source, config, views=args.views, class_names=args.class_names,
                          image_size=args.image_size, progress=report, view_progress=labelled)
    for note in run.figures.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    paths = prg.export(run.result, run.targets.class_names, run.image_size, Path(args.out), run.figures)
    print(json.dumps({**run.figures, "written": [str(p) for p in paths.values()]}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("world", help="write a Shapes World (a classroom scenario's) as PNG class folders, "
                                     "or --list the scenarios and their teachers")
    p.add_argument("--scenario", choices=scenario_names(), default="background",
                   help="the shortcut planted in the biased split")
    p.add_argument("--split", choices=("biased", "shifted"), default="biased")
    p.add_argument("--n", type=int, default=600, help="number of images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--p", type=float, help="shortcut probability of the biased split (default: the scenario's)")
    p.add_argument("--out", help="a new folder: <class>/<id>.png and attributes.csv")
    p.add_argument("--list", action="store_true", help="list the scenarios, their teachers and exit")
    p.set_defaults(func=cmd_world)
    p = sub.add_parser("embed", help="embed images into a store (Parquet shards + manifest), locally or on Ray")
    p.add_argument("--images", help="a folder (class sub-folders give labels), a .txt list of paths, or a .csv / "
                                    ".parquet with a 'path' column (optional 'id' and 'label')")
    p.add_argument("--world", type=parse_world, help="Shapes World split:n:seed[:p] (written as PNGs beside the store)")
    p.add_argument("--out", required=True, help="the store folder to write")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: in this process; ray: decode tasks and model workers on a Ray cluster (RAY_ADDRESS, "
                        "or a local one); needs pip install 'infi[scale]'")
    p.add_argument("--encoder", default=DEFAULT_ENCODER,
                   help="a registered encoder ('demo'), a CLIP hub id or a folder")
    p.add_argument("--scores", action="store_true", help="also store concept scores for --corpus / --corpus-file")
    p.add_argument("--corpus", default="demo", choices=preset_names(), help="a concept preset (with --scores)")
    p.add_argument("--corpus-file", help="a .txt or .csv concept list (implies --scores)")
    p.add_argument("--mode", default="global", choices=REGION_MODES,
                   help="region mode of the stored scores (patches and segments need --scores)")
    p.add_argument("--dense", choices=DENSE_METHODS, help="how region modes make patch embeddings")
    p.add_argument("--resolution", type=int, help="region modes' input size")
    p.add_argument("--batch-size", type=int, help="images per model call (default: 32 on a CPU, 256 on a GPU)")
    p.add_argument("--model-workers", type=int, help="ray: model workers (default: one per GPU, else one per 4 CPUs)")
    p.add_argument("--gpus-per-worker", type=float, help="ray: GPUs per model worker (default 1 when there are GPUs)")
    p.add_argument("--model-threads", type=int, help="ray: torch threads per CPU model worker")
    p.add_argument("--num-cpus", type=int, help="ray: CPUs of the local cluster started when RAY_ADDRESS is unset")
    p.add_argument("--overwrite", action="store_true", help="replace a store already in --out")
    p.set_defaults(func=cmd_embed)
    p = sub.add_parser("concepts", help="compute concept scores and write them as Parquet")
    add_common(p, teacher=False)
    p.add_argument("--out", required=True, help="output .parquet file")
    p.set_defaults(func=cmd_concepts)
    p = sub.add_parser("distill", help="distill a concept student into a session bundle")
    add_common(p)
    DistillConfig.add_arguments(p.add_argument_group("student"))
    p.add_argument("--out", required=True, help="output .infi bundle")
    p.set_defaults(func=cmd_distill)
    p = sub.add_parser("tune", help="apply tuning actions (JSON list) to a bundle")
    p.add_argument("--session", required=True, help="input .infi bundle")
    p.add_argument("--actions", required=True,
                   help='JSON list, e.g. [{"concept": "grass", "kind": "remove", "class_name": "triangle"}] '
                        'or a whole concept group: [{"group": "background", "kind": "remove"}]')
    TuneConfig.add_arguments(p.add_argument_group("refit"))
    p.add_argument("--out", required=True, help="output .infi bundle")
    p.set_defaults(func=cmd_tune)
    p = sub.add_parser("export", help="export student, provenance and concept matrix from a bundle")
    p.add_argument("--session", required=True, help="input .infi bundle")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("prg", help="distill a compact CNN from a CLIP zero-shot teacher (no labels)")
    add_dataset(p, cifar=True)
    p.add_argument("--encoder", default=DEFAULT_ENCODER, help="CLIP teacher: 'demo', a hub id or a folder")
    p.add_argument("--class-names", help="comma-separated class names (default: the folders)")
    p.add_argument("--image-size", type=int, help="student input size (default: the dataset's)")
    PRGConfig.add_arguments(p.add_argument_group("PRG"))
    p.add_argument("--no-cache", action="store_true", help="do not read or write the disk cache")
    p.add_argument("--out", required=True, help="output folder for the student")
    p.set_defaults(func=cmd_prg)
    p = sub.add_parser("compact", help="distill a compact CNN from a session's teacher or edited student "
                                       "(no labels); exports ONNX and .pt2")
    p.add_argument("--session", required=True, help="input .infi bundle (its student after every edit)")
    p.add_argument("--from", dest="source", choices=("zero-shot", "teacher", "student"), default="student",
                   help="what the compact model learns: the concept student (repairs included), the teacher, "
                        "or CLIP zero-shot over class names")
    p.add_argument("--views", type=int, default=8,
                   help="CutMix views per image, labelled by the source, added to training (0: the images "
                        "alone); they keep a repaired student's repair in the CNN (default 8)")
    p.add_argument("--class-names", help="comma-separated class names for --from zero-shot (default: the folders)")
    p.add_argument("--image-size", type=int, help="student input size (default: the dataset's)")
    PRGConfig.add_arguments(p.add_argument_group("PRG"))
    p.add_argument("--out", required=True, help="output folder for the compact model")
    p.set_defaults(func=cmd_compact)
    return parser


def register_bundled_plugins() -> None:
    """The demo plug-in, also when Infi runs from a checkout that was never pip-installed."""
    from infi.demo.plugin import register

    register()


def main(argv: Sequence[str] | None = None) -> int:
    register_bundled_plugins()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InfiError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
