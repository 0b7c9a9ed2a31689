"""Run hostile cases (``tests/hostile/cases.py``) each in an isolated child process with a memory
cap and a time limit, and judge the outcomes.

Layout: ``run_cases`` starts ``workers`` worker processes (``python -m tests.hostile.runner
--worker ROOT``); each imports Infi, torch and transformers once, then for every case name it is
sent it forks twice: a *builder* child writes the case's files and returns its call spec (so the
builder's own memory never counts against the loader), then a *loader* child, which

* caps its address space (``RLIMIT_AS``) at its size after the fork plus ``cap_mb``,
* runs the loader under ``signal.alarm(timeout)`` (raising a ``BaseException``, so no loader's
  ``except Exception`` can swallow it), then *uses* the result the way the app would (decodes
  every kept image, makes a 72-px thumbnail, runs a loaded model on two images, evaluates a
  loaded session), and
* reports JSON over a pipe: outcome, exception type and message, items kept, skipped names.

The worker reads the child's peak RSS from ``os.wait4`` (``ru_maxrss``) and kills a child that
outlives ``timeout`` (a loop in C ignores the alarm). Pickled inputs carry a canary that creates a
file when unpickled; the worker lists the case's canary folder after every case.

Outcomes: ``ok``, ``refused`` (an ``InfiError``), ``unexpected`` (any other exception while
loading), ``late`` (any exception while *using* what loaded: a problem that surfaced after loading),
``memory`` (a ``MemoryError`` anywhere in the exception chain, or a child killed for memory),
``hang``, ``crash`` (the child died), ``build-error`` (the case's own builder failed).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CAP_MB = 1536  # address space a case may add to its worker's (RLIMIT_AS)
RSS_BUDGET_MB = 1500  # peak resident memory of a case's process, worker baseline included
TIMEOUT_S = 30
BUILD_TIMEOUT_S = 60
BAD_OUTCOMES = ("unexpected", "late", "memory", "hang", "crash", "build-error")


class CaseTimeout(BaseException):
    """Raised by SIGALRM in a loader child; a BaseException so ``except Exception`` misses it."""


# --- in the child ---------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _cap_memory(cap_mb: int) -> None:
    limit = _status_kb("VmSize") * 1024 + cap_mb * 1024**2
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _memory_in_chain(err: BaseException) -> bool:
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, MemoryError):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


def _classify(err: BaseException, phase: str) -> str:
    from infi.errors import InfiError

    if isinstance(err, CaseTimeout):
        return "hang"
    if _memory_in_chain(err):
        return "memory"
    if phase == "use":
        return "late"
    return "refused" if isinstance(err, InfiError) else "unexpected"


def _read(path: str | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


def _small_images(n: int, size: int = 32, ids: list[str] | None = None, classes: list[str] | None = None):
    import numpy as np

    from infi.data import from_arrays

    arrays = np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return from_arrays(ids or [f"img{i}" for i in range(n)], arrays, None, classes, {"kind": "test"})


def _load_images(spec: dict):
    from infi.data import from_files, from_folder, from_zip

    if spec["call"] == "zip":
        return from_zip(_read(spec["path"]))
    if spec["call"] == "files":
        return from_files([(name, _read(path)) for name, path in spec["files"]], labels_csv=_read(spec["labels_csv"]))
    return from_folder(spec["path"])


def _load_predictions(spec: dict):
    from infi.teachers import load_predictions

    teacher = load_predictions(_read(spec["path"]), spec["filename"], **spec.get("kwargs", {}))
    images = _small_images(len(spec["ids"]), 8, spec["ids"], spec["classes"])
    return teacher, teacher.predict_proba(images)


def _load(spec: dict):
    call = spec["call"]
    if call in ("zip", "files", "folder"):
        return _load_images(spec)
    if call == "predictions":
        return _load_predictions(spec)
    if call == "bundle":
        from infi.bundle import load_session

        return load_session(_read(spec["path"]))
    if call == "concepts":
        from infi.corpus import parse_concept_file

        return parse_concept_file(_read(spec["path"]), spec["filename"])
    if call == "hf":
        from infi.teachers import from_spec

        return from_spec("hf:" + spec["path"])
    if call == "clip":
        from infi.encoders import ClipEncoder

        return ClipEncoder.load(spec["path"])
    raise ValueError(f"unknown call {call!r}")


def _short(items, count: int = 200, chars: int = 300) -> list[str]:
    """A bounded copy for the report (a class name can be 50 MB long)."""
    return [str(item)[:chars] for item in list(items)[:count]]


def _describe(spec: dict, obj) -> dict:
    """Items kept, skipped names and class names of what loaded."""
    call = spec["call"]
    if call in ("zip", "files", "folder"):
        return {"kept": len(obj.ids), "skipped": _short(s.name for s in obj.skipped),
                "skipped_reasons": _short(f"{s.name}: {s.reason}" for s in obj.skipped[:12]),
                "classes": _short(obj.class_names or ())}
    if call == "predictions":
        teacher, P = obj
        return {"kept": int(P.shape[0]), "classes": _short(teacher.class_names), "notes": _short(teacher.notes)}
    if call == "bundle":
        return {"classes": _short(obj.class_names or ())}
    if call == "concepts":
        return {"kept": len(obj)}
    if call == "hf":
        return {"classes": _short(obj.class_names)}
    return {}


def _use(spec: dict, obj) -> list[str]:
    """Use what loaded as a page would; returns problems found (exceptions propagate)."""
    import numpy as np

    call, problems = spec["call"], []
    if call in ("zip", "files", "folder"):
        for i in range(len(obj)):
            img = obj.image(i)
            if i == 0 and spec.get("expect_size") and list(img.size) != spec["expect_size"]:
                problems.append(f"image 0 is {list(img.size)}, expected {spec['expect_size']} (EXIF orientation)")
            img.thumbnail((72, 72))
            thumb = np.asarray(img)
            if thumb.ndim != 3 or thumb.shape[2] != 3 or min(thumb.shape[:2]) < 1:
                problems.append(f"{obj.ids[i]}: thumbnail of shape {thumb.shape}")
        arrays = obj.as_arrays(32)
        if arrays.shape != (len(obj), 32, 32, 3):
            problems.append(f"as_arrays(32) gave {arrays.shape}")
    elif call == "predictions":
        teacher, P = obj
        if not np.isfinite(P).all() or not np.allclose(P.sum(1), 1, atol=1e-3):
            problems.append("probabilities are not finite rows summing to 1")
        if spec.get("require_note") and not teacher.notes:
            problems.append("values outside [0, 1] were accepted silently (no note)")
    elif call == "bundle":
        obj.image_ids()
        if obj.student is not None:
            obj.evaluate()
            obj.changed_since_fit()
    elif call == "concepts":
        obj.prompts()
        missing = [n for n in spec.get("expect_names", []) if n not in obj.concepts]
        if missing:
            problems.append(f"concept names changed or lost: {missing[:3]}")
    elif call == "hf":
        P = obj.predict_proba(_small_images(2))
        if P.shape != (2, len(obj.class_names)):
            problems.append(f"predictions of shape {P.shape}")
    elif call == "clip":
        emb = obj.embed_images(np.zeros((2, 32, 32, 3), np.uint8), patches=True)
        text = obj.embed_texts(["a red circle", "![x](http://evil.example/t.png)"])
        if emb.global_.shape[0] != 2 or text.shape[0] != 2:
            problems.append("embeddings of the wrong shape")
    return problems


def _alarm(signum, frame):
    raise CaseTimeout(f"still running after the time limit (signal {signum})")


def run_loader(spec: dict, timeout: int) -> dict:
    """Load and use one spec under an alarm; the report the child sends back."""
    report: dict = {"kept": None, "skipped": [], "checks": [], "notes": []}
    phase = "load"
    t0 = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        obj = _load(spec)
        report["load_s"] = round(time.perf_counter() - t0, 3)
        report.update(_describe(spec, obj))
        phase = "use"
        report["checks"] = _use(spec, obj)
        expected = spec.get("expect_classes")
        if expected is not None and sorted(report.get("classes", [])) != sorted(expected):
            report["checks"].append(f"class names {report.get('classes')} differ from {expected}")
        report["outcome"] = "ok"
    except BaseException as err:  # noqa: BLE001 - every escape is classified, none is fatal
        from infi.errors import InfiError

        outcome = _classify(err, phase)
        report.update(outcome=outcome, phase=phase, error_type=type(err).__name__,
                      message=str(err)[:400], infi_error=isinstance(err, InfiError))
        if outcome not in ("refused", "hang"):
            report["traceback"] = traceback.format_exc()[-1500:]
    finally:
        signal.alarm(0)
    report["seconds"] = round(time.perf_counter() - t0, 3)
    return report


def run_builder(case, folder: Path) -> dict:
    t0 = time.perf_counter()
    spec = case.build(folder)
    json.dumps(spec)  # specs cross a pipe: they must be plain data
    return {"outcome": "built", "spec": spec, "build_s": round(time.perf_counter() - t0, 3)}


def in_child(fn: Callable[[], dict], limit_s: float, cap_mb: int | None) -> dict:
    """``fn()`` in a forked child (address space capped when ``cap_mb``), its JSON report read
    over a pipe; killed after ``limit_s`` seconds. Adds peak_rss_mb and wall_s."""
    r, w = os.pipe()
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            os.close(r)
            if cap_mb:
                _cap_memory(cap_mb)
            report = fn()
        except BaseException as err:  # noqa: BLE001
            report = {"outcome": "memory" if _memory_in_chain(err) else "crash", "error_type": type(err).__name__,
                      "message": str(err)[:400], "traceback": traceback.format_exc()[-1500:]}
        try:
            data = json.dumps(report, default=str).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(w, view):]
        finally:
            os._exit(0)
    os.close(w)
    chunks, killed = [], False
    while True:
        left = limit_s - (time.monotonic() - t0)
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            killed = True
            break
        ready, _, _ = select.select([r], [], [], left)
        if ready:
            block = os.read(r, 1 << 16)
            if not block:
                break
            chunks.append(block)
    os.close(r)
    _, status, usage = os.wait4(pid, 0)
    out: dict
    if killed:
        out = {"outcome": "hang", "message": f"killed after {limit_s:.0f} s"}
    elif chunks:
        try:
            out = json.loads(b"".join(chunks))
        except ValueError:
            out = {"outcome": "crash", "message": "unreadable report from the child"}
    elif os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status)).name
        out = {"outcome": "memory" if sig == "SIGKILL" else "crash", "message": f"child killed by {sig}"}
    else:
        out = {"outcome": "crash", "message": f"child exited with status {os.waitstatus_to_exitcode(status)}"}
    out["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    out["wall_s"] = round(time.monotonic() - t0, 3)
    return out


def run_one(case, root: Path, timeout: int = TIMEOUT_S, cap_mb: int = CAP_MB) -> dict:
    """Build then load one case in two children; the result row (see the module docstring)."""
    case_dir = root / case.name
    files, canary = case_dir / "files", case_dir / "canary"
    files.mkdir(parents=True)
    canary.mkdir()
    result: dict = {"name": case.name, "category": case.category}
    try:
        built = in_child(lambda: run_builder(case, files), BUILD_TIMEOUT_S, None)
        if built.get("outcome") != "built":
            result.update(built, outcome="build-error")
        else:
            result["build_s"] = built["build_s"]
            result.update(in_child(lambda: run_loader(built["spec"], timeout), timeout + 5, cap_mb))
        result["canary"] = sorted(p.name for p in canary.iterdir())
    finally:
        shutil.rmtree(case_dir, ignore_errors=True)
    return result


# --- the worker -------------------------------------------------------------------------------


def _preload() -> None:
    """Everything a loader may import, imported once before any fork (and no torch op run, so
    forking is safe)."""
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import safetensors.numpy  # noqa: F401
    import torch
    import transformers  # noqa: F401
    from PIL import Image  # noqa: F401
    from transformers import (  # noqa: F401
        AutoImageProcessor,
        AutoModelForImageClassification,
        CLIPModel,
        CLIPProcessor,
        ViTForImageClassification,
        ViTImageProcessor,
    )

    import infi.bundle  # noqa: F401
    import infi.corpus  # noqa: F401
    import infi.data  # noqa: F401
    import infi.encoders  # noqa: F401
    import infi.teachers  # noqa: F401
    import tests.helpers  # noqa: F401
    from infi import registry
    from infi.demo.plugin import register

    torch.set_num_threads(1)
    register()
    registry.load_plugins()
    gc.collect()
    gc.freeze()  # children never walk (and so never copy) the pages of what was imported


def worker_main(root: Path, timeout: int, cap_mb: int) -> None:
    """Read case names on stdin, write one JSON result per line on (the original) stdout."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever a loader prints goes to the log, never into the protocol
    _preload()
    from tests.hostile.cases import CASES_BY_NAME

    out.write(json.dumps({"ready": True, "baseline_rss_mb": round(_status_kb("VmRSS") / 1024, 1),
                          "pid": os.getpid()}) + "\n")
    for line in sys.stdin:
        name = line.strip()
        if name:
            out.write(json.dumps(run_one(CASES_BY_NAME[name], root, timeout, cap_mb)) + "\n")


# --- the parent ---------------------------------------------------------------------------------


def worker_env(root: Path, extra: dict | None = None) -> dict:
    """The workers' environment: offline, one thread each, the default (laptop) budget."""
    env = {k: v for k, v in os.environ.items() if not (k.startswith("INFI_LIMIT_") or k == "INFI_HOSTED")}
    path = env.get("PYTHONPATH")
    env.update({
        "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else ""),
        "INFI_HOSTILE_FIXTURES": str(root / "_fixtures"),
        "INFI_CACHE_DIR": str(root / "_cache"),
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "ARROW_DEFAULT_MEMORY_POOL": "system",  # jemalloc/mimalloc reserve address space up front
        "MALLOC_ARENA_MAX": "2",
    })
    env.update(extra or {})
    return env


class _Worker:
    def __init__(self, index: int, root: Path, timeout: int, cap_mb: int, env: dict):
        self.log = open(root / f"worker-{index}.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.hostile.runner", "--worker", str(root),
                                      str(timeout), str(cap_mb)], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log)
        self.fd = self.proc.stdout.fileno()
        self.pending: list[bytes] = []  # the start of a line not yet complete
        self.ready = False
        self.case: str | None = None
        self.since = 0.0
        self.baseline_rss_mb: float | None = None
        self.alive = True

    def send(self, name: str) -> None:
        self.case, self.since = name, time.monotonic()
        self.proc.stdin.write(name.encode() + b"\n")
        self.proc.stdin.flush()

    def messages(self) -> list[dict] | None:
        """Complete JSON lines read so far; None at end of stream (the worker died)."""
        block = os.read(self.fd, 1 << 16)
        if not block:
            return None
        if b"\n" not in block:
            self.pending.append(block)
            return []
        *lines, rest = b"".join([*self.pending, block]).split(b"\n")
        self.pending = [rest]
        return [json.loads(line) for line in lines if line.strip()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def run_cases(cases: Iterable, workers: int = 2, timeout: int = TIMEOUT_S, cap_mb: int = CAP_MB,
              on_result: Callable[[dict], None] | None = None, env: dict | None = None,
              keep: Path | None = None) -> list[dict]:
    """Run ``cases`` (from ``tests.hostile.cases.CASES``, looked up by name in the workers) on
    ``workers`` worker processes; one result dict per case, in the given order. Each result
    carries its worker's ``baseline_rss_mb``. ``keep``: copy the worker logs there."""
    cases = list(cases)
    root = Path(tempfile.mkdtemp(prefix="infi-hostile-"))
    pool = [_Worker(i, root, timeout, cap_mb, worker_env(root, env)) for i in range(max(1, workers))]
    pending = deque(c.name for c in cases)
    results: dict[str, dict] = {}
    stuck_after = BUILD_TIMEOUT_S + timeout + 30

    def finish(worker: _Worker, row: dict) -> None:
        row["baseline_rss_mb"] = worker.baseline_rss_mb
        results[row["name"]] = row
        worker.case = None
        if on_result is not None:
            on_result(row)

    try:
        while pending or any(w.case for w in pool):
            live = [w for w in pool if w.alive]
            if not live:
                break
            for w in live:
                if w.ready and w.case is None and pending:
                    w.send(pending.popleft())
            readable, _, _ = select.select([w.fd for w in live], [], [], 5)
            for w in live:
                if w.fd in readable:
                    messages = w.messages()
                    if messages is None:
                        w.alive = False
                        if w.case:
                            finish(w, {"name": w.case, "outcome": "crash", "message": "the worker process died"})
                        continue
                    for msg in messages:
                        if msg.get("ready"):
                            w.ready, w.baseline_rss_mb = True, msg["baseline_rss_mb"]
                        else:
                            finish(w, msg)
                elif w.case and time.monotonic() - w.since > stuck_after:
                    w.proc.kill()
                    w.alive = False
                    finish(w, {"name": w.case, "outcome": "hang", "message": "the worker itself got stuck"})
        for name in pending:
            results[name] = {"name": name, "outcome": "crash", "message": "not run: every worker died"}
    finally:
        for w in pool:
            w.stop()
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for log in root.glob("worker-*.log"):
                shutil.copy(log, keep / log.name)
        shutil.rmtree(root, ignore_errors=True)
    by_name = {c.name: c for c in cases}
    return [{"category": by_name[c.name].category, **results[c.name]} for c in cases]


# --- judging ------------------------------------------------------------------------------------


def problems(case, result: dict, rss_budget_mb: float = RSS_BUDGET_MB) -> list[str]:
    """Everything wrong with one result, as short phrases (empty: the case passes)."""
    out = []
    outcome = result.get("outcome")
    detail = f"{result.get('error_type', '')}: {result.get('message', '')}".strip(": ")[:160]
    if outcome == "unexpected":
        out.append(f"unexpected {detail}")
    elif outcome == "late":
        out.append(f"failed after loading: {detail}")
    elif outcome in ("memory", "hang", "crash", "build-error"):
        out.append(f"{outcome}: {detail}")
    elif case.expect == "ok" and outcome == "refused":
        out.append(f"refused: {detail}")
    elif case.expect == "refused" and outcome == "ok":
        out.append("accepted, expected a refusal")
    if (result.get("peak_rss_mb") or 0) > rss_budget_mb:
        out.append(f"peak RSS {result['peak_rss_mb']:.0f} MB over {rss_budget_mb:.0f} MB")
    if result.get("canary"):
        out.append(f"pickle executed ({', '.join(result['canary'])})")
    if outcome == "ok":
        if case.valid_items is not None and result.get("kept") != case.valid_items:
            out.append(f"kept {result.get('kept')} items, expected {case.valid_items}")
        missing = [n for n in case.skipped if n not in (result.get("skipped") or [])]
        if missing:
            out.append(f"not named as skipped: {missing[:3]}")
        out.extend(result.get("checks") or [])
    seconds = result.get("seconds")
    if case.max_seconds is not None and seconds is not None and seconds > case.max_seconds:
        out.append(f"took {seconds:.1f} s (at most {case.max_seconds:.0f} s)")
    return out


def items_lost(case, result: dict) -> int:
    """Good items a case required that were not kept (all of them when it did not load)."""
    if case.valid_items is None or case.expect == "refused" or (case.expect == "either"
                                                                 and result.get("outcome") == "refused"):
        return 0
    kept = result.get("kept") if result.get("outcome") == "ok" else 0
    return max(0, case.valid_items - (kept or 0))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--worker":
        worker_main(Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else TIMEOUT_S,
                    int(sys.argv[4]) if len(sys.argv) > 4 else CAP_MB)
    else:
        from tests.hostile.cases import CASES_BY_NAME

        names = sys.argv[1:] or list(CASES_BY_NAME)
        chosen = [CASES_BY_NAME[n] for n in names]
        for row in run_cases(chosen):
            print(json.dumps(row))
