"""The command line: the same Session as the app, its errors, and the drift bugs it once had."""

import json

import numpy as np
import pytest

from infi import __main__ as cli
from infi.bundle import load_session
from infi.demo.plugin import demo_corpus
from infi.demo.teacher import DemoTeacherAdapter
from infi.demo.world import from_world, generate_world
from infi.session import Session


def test_cli_and_session_give_identical_students(tmp_path, monkeypatch):
    monkeypatch.setenv("INFI_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "s.infi"
    rc = cli.main(["distill", "--world", "biased:120:21", "--members", "3", "--out", str(out)])
    assert rc == 0
    via_cli = load_session(out.read_bytes())
    direct = Session(seed=0)
    direct.set_dataset(from_world(generate_world(120, seed=21)))
    direct.run_teacher(DemoTeacherAdapter())
    direct.set_encoder("demo")
    direct.extract_concepts(demo_corpus(), "global")
    direct.distill(n_members=3)
    assert np.array_equal(via_cli.student.coef_, direct.student.coef_)
    actions = tmp_path / "a.json"
    actions.write_text(json.dumps([{"concept": "grass", "kind": "remove", "class_name": "triangle"}]))
    assert cli.main(["tune", "--session", str(out), "--actions", str(actions), "--out", str(out)]) == 0
    assert cli.main(["export", "--session", str(out), "--out", str(tmp_path / "exp")]) == 0
    assert (tmp_path / "exp" / "student.safetensors").is_file()
    assert (tmp_path / "exp" / "concepts.parquet").is_file()
    actions.write_text('[{"concept": "nope", "kind": "remove"}]')
    assert cli.main(["tune", "--session", str(out), "--actions", str(actions), "--out", str(out)]) == 2


def test_cli_reads_a_predictions_file_and_names_a_missing_one(tmp_path, monkeypatch, capsys):
    import pandas as pd

    monkeypatch.setenv("INFI_CACHE_DIR", str(tmp_path / "cache"))
    data = from_world(generate_world(120, seed=21))
    teacher = DemoTeacherAdapter()
    P = teacher.predict_proba(data)
    table = pd.DataFrame(P, columns=list(teacher.class_names))
    table.insert(0, "id", list(data.ids))
    preds = tmp_path / "teacher.csv"
    table.iloc[::-1].to_csv(preds, index=False)  # any row order: matched by id
    out = tmp_path / "p.infi"
    assert cli.main(["distill", "--world", "biased:120:21", "--teacher", f"predictions:{preds}",
                     "--members", "2", "--out", str(out)]) == 0
    assert np.allclose(load_session(out.read_bytes()).P, P, atol=1e-6)
    capsys.readouterr()
    assert cli.main(["distill", "--world", "biased:120:21", "--teacher", "predictions:typo.csv",
                     "--out", str(out)]) == 2
    assert "typo.csv: no file at typo.csv" in capsys.readouterr().err



def test_prg_reindexes_labels_to_the_class_names_given_and_strips_them(tmp_path):
    """Drift bugs: cmd_prg passed dataset labels in folder order although --class-names set
    another order (accuracy read against the wrong classes), and did not strip the names."""
    order = "star , circle,square,  triangle, cross, hexagon"
    out = tmp_path / "prg"
    assert cli.main(["prg", "--world", "shifted:300:5", "--class-names", order, "--epochs", "1",
                     "--batch-size", "64", "--no-cache", "--out", str(out)]) == 0
    card = json.loads((out / "prg_student.json").read_text())
    assert card["classes"] == ["star", "circle", "square", "triangle", "cross", "hexagon"]
    # The zero-shot teacher is ~99% right on this world; against labels in the wrong order it
    # would score near chance (1/6).
    assert card["metrics"]["teacher_accuracy"] > 0.9


def test_npy_predictions_take_the_dataset_class_names(tmp_path, monkeypatch):
    """Drift bug: a CLI .npy predictions file got no class names (class_0 …), so a labelled
    dataset then failed the class check; the app passed the dataset's names."""
    monkeypatch.setenv("INFI_CACHE_DIR", str(tmp_path / "cache"))
    data = from_world(generate_world(120, seed=21))
    np.save(tmp_path / "p.npy", DemoTeacherAdapter().predict_proba(data))
    out = tmp_path / "n.infi"
    assert cli.main(["distill", "--world", "biased:120:21", "--teacher", f"predictions:{tmp_path / 'p.npy'}",
                     "--members", "2", "--out", str(out)]) == 0
    assert load_session(out.read_bytes()).class_names == data.class_names


def test_concepts_command_writes_the_bundle_concept_frame(tmp_path, monkeypatch):
    """Drift bug: cmd_concepts re-implemented bundle.concept_frame; now both write one table."""
    import pandas as pd

    from infi.bundle import concept_frame

    monkeypatch.setenv("INFI_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "c.parquet"
    assert cli.main(["concepts", "--world", "biased:40:3", "--out", str(out)]) == 0
    s = Session(seed=0)
    s.set_dataset(from_world(generate_world(40, seed=3)))
    s.set_encoder("demo")
    s.extract_concepts(demo_corpus(), "global")
    pd.testing.assert_frame_equal(pd.read_parquet(out), concept_frame(s))


def test_input_problems_are_one_line_and_bugs_keep_their_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INFI_CACHE_DIR", str(tmp_path / "cache"))
    out = str(tmp_path / "x.infi")
    assert cli.main(["distill", "--world", "biased:60:3", "--members", "0", "--out", out]) == 2
    assert "error: n_members: must be >= 1" in capsys.readouterr().err
    assert cli.main(["distill", "--world", "biased:60:3", "--out", str(tmp_path / "no" / "x.infi")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["distill", "--world", "biased:60:3", "--teacher", "nosuch", "--out", out]) == 2
    assert "no teacher named 'nosuch' (known: demo, demo-colour" in capsys.readouterr().err

    def broken(self, *args, **kwargs):
        raise RuntimeError("a bug, not the user's input")

    monkeypatch.setattr(Session, "distill", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["distill", "--world", "biased:60:3", "--out", out])


def test_cli_flags_come_from_the_configs(capsys):
    from infi.config import DistillConfig, PRGConfig

    parser = cli.build_parser()
    distill = parser.parse_args(["distill", "--world", "biased:10:1", "--out", "x"])
    assert DistillConfig.from_namespace(distill) == DistillConfig()
    prg = parser.parse_args(["prg", "--world", "biased:10:1", "--out", "x"])
    assert PRGConfig.from_namespace(prg) == PRGConfig()
    with pytest.raises(SystemExit):
        cli.main(["prg", "--help"])
    text = capsys.readouterr().out
    for flag in ("--w-node", "--tau-edge", "--kd-temperature", "--patience", "--weight-decay"):
        assert flag in text


def test_more_careless_inputs_are_one_line_errors(tmp_path, monkeypatch, capsys):
    """Found by a newcomer walk: each of these printed a traceback."""
    monkeypatch.setenv("INFI_CACHE_DIR", str(tmp_path / "cache"))
    empty = tmp_path / "empty"
    empty.mkdir()
    out = str(tmp_path / "x.infi")
    cases = [(["distill", "--world", "biased:40:3", "--teacher", f"hf:{empty}", "--out", out], "Could not load"),
             (["distill", "--world", "biased:40:3", "--teacher", "torchscript:nope.pt", "--out", out],
              "nope.pt: no file"),
             (["distill", "--world", "oval:40:3", "--out", out], "split"),
             (["export", "--session", out, "--out", out], "no file")]
    for argv, message in cases:
        assert cli.main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_a_predictions_file_skips_the_evaluation_sets_and_says_so(tmp_path, monkeypatch, capsys):
    """A predictions file holds outputs for the dataset only: an evaluation set loaded beside it
    is skipped with a note, not a refusal of a correct file."""
    monkeypatch.setenv("INFI_CACHE_DIR", str(tmp_path / "cache"))
    data = from_world(generate_world(120, seed=21))
    np.save(tmp_path / "p.npy", DemoTeacherAdapter().predict_proba(data))
    out = tmp_path / "n.infi"
    assert cli.main(["distill", "--world", "biased:120:21", "--shifted", "shifted:60:4", "--teacher",
                     f"predictions:{tmp_path / 'p.npy'}", "--members", "2", "--out", str(out)]) == 0
    assert "no outputs for the evaluation set 'shifted'" in capsys.readouterr().err
    assert "shifted_accuracy" not in load_session(out.read_bytes()).evaluate()


def test_tune_takes_groups_holds_others_by_default_and_says_what_took_over(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INFI_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "s.infi"
    assert cli.main(["distill", "--world", "biased:200:21", "--members", "3", "--out", str(out)]) == 0
    actions = tmp_path / "a.json"
    actions.write_text(json.dumps([{"group": "background", "kind": "remove", "class_name": "triangle"}]))
    capsys.readouterr()
    assert cli.main(["tune", "--session", str(out), "--actions", str(actions), "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["hold_others"] == 0.25 and "fidelity" in report["metrics"]
    assert all(r["class"] == "triangle" for r in report["took_over"])
    step = load_session(out.read_bytes()).provenance.steps[-1]
    assert step.hold_others == 0.25 and len(step.actions) == 6
    # The same removal again, refitting freely, changes no bound: refused rather than logged twice.
    again = ["tune", "--session", str(out), "--actions", str(actions), "--hold-others", "none", "--out", str(out)]
    assert cli.main(again) == 2
    assert "nothing to change" in capsys.readouterr().err


def test_concepts_command_takes_the_dense_method(tmp_path, monkeypatch):
    import pandas as pd

    from infi.bundle import concept_frame

    monkeypatch.setenv("INFI_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "c.parquet"
    args = ["concepts", "--world", "biased:40:3", "--mode", "patches", "--dense", "sclip", "--out", str(out)]
    assert cli.main(args) == 0
    s = Session(seed=0)
    s.set_dataset(from_world(generate_world(40, seed=3)))
    s.set_encoder("demo")
    s.extract_concepts(demo_corpus(), "patches", dense="sclip")
    pd.testing.assert_frame_equal(pd.read_parquet(out), concept_frame(s))
    s.extract_concepts(demo_corpus(), "patches", dense="vanilla")
    assert not pd.read_parquet(out).equals(concept_frame(s))


def test_compact_learns_from_a_saved_sessions_edited_student(tmp_path, monkeypatch, capsys):
    import json

    from infi.bundle import save_session
    from infi.tuning import TuningAction
    from tests.helpers import demo_session

    monkeypatch.setenv("INFI_CACHE_DIR", str(tmp_path / "cache"))
    s = demo_session(n=120, members=2)
    s.tune([TuningAction.for_group("background", "remove")])
    bundle = tmp_path / "s.infi"
    bundle.write_bytes(save_session(s))
    rc = cli.main(["compact", "--session", str(bundle), "--from", "student", "--epochs", "1", "--batch-size", "32",
                   "--views", "1", "--out", str(tmp_path / "compact")])
    assert rc == 0
    printed = capsys.readouterr()
    out = json.loads(printed.out.strip().splitlines()[-1])
    assert out["source"] == "student" and "shifted_compact_accuracy" in out and out["views_per_image"] == 1
    assert '"mixed_views_labelled": 120' in printed.err
    assert (tmp_path / "compact" / "prg_student.onnx").is_file()
    # a restored session has the teacher's outputs, not the teacher: no view can be labelled, and it says so
    rc = cli.main(["compact", "--session", str(bundle), "--from", "teacher", "--epochs", "1", "--batch-size", "32",
                   "--out", str(tmp_path / "compact2")])
    printed = capsys.readouterr()
    assert rc == 0 and "no mixed view could be labelled" in printed.err
    assert json.loads(printed.out.strip().splitlines()[-1])["views_per_image"] == 0


def test_world_writes_a_scenario_and_distill_runs_its_teacher_by_name(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INFI_CACHE_DIR", str(tmp_path / "cache"))
    assert cli.main(["world", "--list"]) == 0
    listed = {row["scenario"]: row for row in json.loads(capsys.readouterr().out)}
    assert len(listed) >= 5 and listed["size"]["teacher"] == "demo-size"
    assert listed["size"]["classes"] == ["circle", "hexagon"]
    out = tmp_path / "world"
    assert cli.main(["world", "--scenario", "fill", "--n", "30", "--seed", "4", "--out", str(out)]) == 0
    written = json.loads(capsys.readouterr().out)
    assert written["images"] == 30 and written["teacher"] == "demo-fill"
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["circle", "square", "triangle"]
    assert sum(1 for _ in out.glob("*/*.png")) == 30 and (out / "attributes.csv").is_file()
    assert cli.main(["world", "--n", "5", "--out", str(out)]) == 2  # never writes over a folder
    assert "is not empty" in capsys.readouterr().err
    bundle = tmp_path / "fill.infi"
    assert cli.main(["distill", "--world", "biased:120:7", "--shifted", "shifted:60:8", "--scenario", "fill",
                     "--teacher", "demo-fill", "--members", "2", "--out", str(bundle)]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["teacher_accuracy"] - figures["shifted_teacher_accuracy"] > 0.2  # the teacher's shortcut
    assert load_session(bundle.read_bytes()).dataset.source["scenario"] == "fill"
    assert cli.main(["distill", "--world", "biased:60:7", "--teacher", "demo-size", "--out", str(bundle)]) == 2
    assert "do not match the dataset's classes" in capsys.readouterr().err


def test_world_checks_the_budget_and_its_parameters_before_drawing(tmp_path, capsys):
    out = tmp_path / "w"
    assert cli.main(["world", "--n", str(10**9), "--out", str(out)]) == 2
    assert "INFI_LIMIT_MAX_WORLD_IMAGES" in capsys.readouterr().err and not out.exists()
    for bad in (["--n", "0"], ["--p", "1.5"], ["--seed", "-1"]):
        assert cli.main(["world", *bad, "--out", str(out)]) == 2, bad
        assert capsys.readouterr().err.startswith("error: world:"), bad
    assert cli.main(["world"]) == 2 and "give --out" in capsys.readouterr().err
