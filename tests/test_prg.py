"""PRG: loss terms against hand-computed values, a short run, export round-trips."""

import io
import json
import warnings
import zipfile

import numpy as np
import pytest
import torch

from infi import prg
from infi.demo.world import COLOURS, generate_world
from infi.teachers import ClipZeroShotTeacher


def softmax(a):
    e = np.exp(a - a.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def kl_rows(t, s):
    p, q = softmax(t), softmax(s)
    return float((p * (np.log(p) - np.log(q))).sum(-1).mean())


def test_node_loss_by_hand():
    z = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    v = torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    assert prg.node_loss(z, v).item() == pytest.approx((1.0 + 0.0) / 2)


def test_edge_loss_by_hand():
    z = np.array([[1.0, 0.0], [0.6, 0.8]])
    v = np.array([[0.8, 0.6], [0.0, 1.0]])
    P = np.array([[1.0, 0.0], [0.0, 1.0]])
    tau = 0.5
    expected = kl_rows(v @ P.T / tau, z @ P.T / tau)
    got = prg.edge_loss(torch.tensor(z), torch.tensor(v), torch.tensor(P), tau)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_relation_loss_by_hand_excludes_the_diagonal():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, 3))
    v = rng.normal(size=(4, 3))
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    vn = v / np.linalg.norm(v, axis=1, keepdims=True)
    off = ~np.eye(4, dtype=bool)
    tau = 0.2
    expected = kl_rows((vn @ vn.T / tau)[off].reshape(4, 3), (zn @ zn.T / tau)[off].reshape(4, 3))
    assert prg.relation_loss(torch.tensor(z), torch.tensor(v), tau).item() == pytest.approx(expected, rel=1e-6)
    assert prg.relation_loss(torch.tensor(z), torch.tensor(z), tau).item() == pytest.approx(0, abs=1e-9)


def test_pseudo_label_and_kd_losses_by_hand():
    s = np.array([[2.0, 0.0, -1.0]])
    t = np.array([[0.0, 3.0, 0.0]])
    ce = -np.log(softmax(s)[0, 1])
    assert prg.pseudo_label_loss(torch.tensor(s), torch.tensor(t)).item() == pytest.approx(ce, rel=1e-6)
    T = 4.0
    expected = T * T * kl_rows(t / T, s / T)
    assert prg.kd_loss(torch.tensor(s), torch.tensor(t), T).item() == pytest.approx(expected, rel=1e-6)


def test_student_sizes():
    proxies = torch.randn(6, 128)
    small = prg.PRGStudent(proxies, "small", 64)
    assert prg.n_parameters(small) < 1_000_000
    big = prg.PRGStudent(torch.randn(10, 512), "resnet18", 32)
    assert 1_000_000 < prg.n_parameters(big) < 2_500_000
    assert small(torch.rand(2, 3, 64, 64)).shape == (2, 6)
    assert prg.PRGStudent(torch.randn(3, 16), "resnet18", 224)(torch.rand(1, 3, 224, 224)).shape == (1, 3)


@pytest.mark.parametrize("bad, message", [({"method": "x"}, "method"), ({"w_node": -1}, "w_node"),
                                          ({"tau_edge": 0}, "tau_edge"),
                                          ({"w_node": 0, "w_edge": 0, "w_relation": 0, "w_pseudo": 0}, "at least one")])
def test_bad_settings_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        prg.PRGConfig(**bad).validate()


@pytest.fixture(scope="module")
def tiny_run(demo_encoder):
    # Colour is what a CNN picks up in a few epochs, so a short run can show real learning; the
    # teacher is CLIP zero-shot over colour names and no label is involved.
    world = generate_world(320, split="shifted", seed=51)
    teacher = ClipZeroShotTeacher(demo_encoder, tuple(COLOURS), templates=("a photo of a {} shape",))
    targets = prg.teacher_targets(teacher, world.images)
    config = prg.PRGConfig(epochs=3, batch_size=32, lr=3e-3, patience=5)
    untrained = prg.PRGStudent(torch.from_numpy(targets.class_embeddings), "small", 64)
    result = prg.train(world.images, targets, config)
    return world, targets, untrained, result


def test_short_run_raises_teacher_agreement(tiny_run):
    world, targets, untrained, result = tiny_run
    before = prg.agreement(prg.predict_logits(untrained, world.images), targets.logits)
    after = prg.agreement(prg.predict_logits(result.model, world.images), targets.logits)
    assert after > before + 0.15
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert {"node", "edge", "relation", "pseudo", "val_agreement"} <= set(result.history[0])


def test_export_round_trips(tiny_run, tmp_path):
    """ONNX through onnxruntime and the .pt2 program through torch.export.load, within 1e-4 of the
    eager model on the world's images; safetensors + card rebuild it exactly."""
    import onnxruntime as ort

    world, targets, _, result = tiny_run
    paths = prg.export(result, targets.class_names, 64, tmp_path)
    x = prg.to_tensor(world.images[:5])
    session = ort.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        eager = result.model(x)
        onnx_out = torch.from_numpy(session.run(["logits"], {"images": x.numpy()})[0])
        program = torch.export.load(str(paths["program"])).module()(x)
        rebuilt, card = prg.load_exported(tmp_path)
        again = rebuilt(x)
    assert torch.allclose(eager, onnx_out, atol=1e-4) and torch.allclose(eager, program, atol=1e-4)
    assert torch.allclose(eager, again, atol=1e-6)
    assert card["exports"]["onnx_max_abs_diff"] <= 1e-4 and card["exports"]["pt2_max_abs_diff"] <= 1e-4
    assert card["classes"] == list(targets.class_names) and card["parameters"] == prg.n_parameters(result.model)


def test_run_figures_compare_with_the_clip_tower_and_the_export_zip_is_built_once(tiny_run, demo_encoder):
    world = tiny_run[0]
    teacher = ClipZeroShotTeacher(demo_encoder, tuple(COLOURS), templates=("a photo of a {} shape",))
    run = prg.distill_images(world.images[:64], None, teacher, prg.PRGConfig(epochs=1, batch_size=32))
    tower = demo_encoder.model
    assert run.figures["teacher_parameters"] == (prg.n_parameters(tower.vision_model)
                                                 + prg.n_parameters(tower.visual_projection))
    assert run.figures["teacher_ms_per_image"] > 0 and run.figures["teacher_encoder"] == demo_encoder.name
    assert "student_accuracy" not in run.figures  # no labels given, none reported
    blob = run.export_zip()
    assert run.export_zip() is blob
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert sorted(zf.namelist()) == ["README.txt", "prg_student.json", "prg_student.onnx", "prg_student.pt2",
                                         "prg_student.safetensors"]
        card = json.loads(zf.read("prg_student.json"))
    assert card["metrics"]["teacher_parameters"] == run.figures["teacher_parameters"]


@pytest.mark.parametrize("arch, size", [("small", 64), ("resnet18", 32), ("resnet18", 224)])
def test_inference_copy_folds_batchnorm_and_keeps_outputs(arch, size):
    torch.manual_seed(0)
    model = prg.PRGStudent(torch.randn(5, 16), arch, size)
    model.train()
    model(torch.rand(8, 3, size, size))  # move the running statistics off their defaults
    model.eval()
    fused = prg.for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.rand(3, 3, size, size)
    with torch.inference_mode():
        assert torch.allclose(model(x), fused(x), atol=1e-4)


def test_kd_and_feature_baselines_train(demo_encoder):
    world = generate_world(96, split="shifted", seed=52)
    teacher = ClipZeroShotTeacher(demo_encoder, world.class_names, templates=("a photo of a {}",))
    targets = prg.teacher_targets(teacher, world.images)
    for method in ("kd", "feature"):
        result = prg.train(world.images, targets, prg.PRGConfig(method=method, epochs=1, batch_size=32))
        assert result.history[0]["loss"] > 0
        assert set(result.history[0]) >= ({"kd"} if method == "kd" else {"node"})


def test_prg_cli_trains_and_exports(tmp_path, capsys):
    import json

    from infi import __main__ as cli

    rc = cli.main(["prg", "--world", "shifted:64:53", "--epochs", "1", "--batch-size", "16",
                   "--out", str(tmp_path / "student")])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 <= out["teacher_agreement"] <= 1 and "student_accuracy" in out
    assert (tmp_path / "student" / "prg_student.onnx").is_file()
    assert (tmp_path / "student" / "prg_student.pt2").is_file()


@pytest.mark.parametrize("arch, size", [("small", 64), ("resnet18", 32)])
def test_batchnorm_folding_keeps_the_outputs_and_imports_no_torchscript(arch, size):
    model = prg.KDStudent(4, arch, size)
    for module in model.modules():  # trained-looking statistics, so folding has work to do
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # torch's fx fuse imported TorchScript modules
        folded = prg.for_inference(model)
    x = torch.rand(3, 3, size, size)
    with torch.inference_mode():
        assert torch.allclose(folded(x), model(x), atol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
