"""One path: the same small pipeline through the CLI and through the app (AppTest) gives the
same bundle, array for array, step for step."""

import io
import json
import zipfile

import numpy as np
from safetensors.numpy import load as load_safetensors

from infi import __main__ as cli
from infi.bundle import save_session
from infi.ui import state
from tests.helpers import app_with_concepts


def bundle_parts(blob: bytes) -> tuple[dict, dict, list[dict]]:
    """(manifest, arrays, provenance steps without their timestamps and labels)."""
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        arrays = load_safetensors(zf.read("arrays.safetensors"))
        steps = json.loads(zf.read("provenance.json"))["steps"]
    for step in steps:
        step.pop("created"), step.pop("label")
    return manifest, arrays, steps


def app_bundle() -> bytes:
    at = app_with_concepts(120, seed=21)
    at.switch_page("pages/distill.py").run()
    at.number_input(key=state.MEMBERS).set_value(3)
    at.button(key=state.BTN_DISTILL).click().run()
    at.switch_page("pages/finetune.py").run()
    at.selectbox(key=state.TUNE_CLASS).set_value("triangle").run()
    at.selectbox(key=state.quick_concept_key("triangle")).set_value("grass")
    at.selectbox(key=state.QUICK_ACTION).set_value("remove")
    at.button(key=state.BTN_QUICK).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return save_session(at.session_state[state.SESSION])


def cli_bundle(tmp_path) -> bytes:
    out = tmp_path / "cli.infi"
    # The app's Shapes World section: biased split, p = 0.9, a shifted set of max(200, n/2) images
    # drawn with seed + 1; the demo teacher, encoder and corpus; global regions.
    assert cli.main(["distill", "--world", "biased:120:21:0.9", "--shifted", "shifted:200:22",
                     "--members", "3", "--no-cache", "--out", str(out)]) == 0
    actions = tmp_path / "actions.json"
    actions.write_text(json.dumps([{"concept": "grass", "kind": "remove", "class_name": "triangle"}]))
    assert cli.main(["tune", "--session", str(out), "--actions", str(actions), "--out", str(out)]) == 0
    return out.read_bytes()


def test_cli_and_app_give_the_same_bundle(tmp_path):
    m_app, a_app, steps_app = bundle_parts(app_bundle())
    m_cli, a_cli, steps_cli = bundle_parts(cli_bundle(tmp_path))
    assert m_app == m_cli
    assert sorted(a_app) == sorted(a_cli)
    for key in a_app:
        assert np.array_equal(a_app[key], a_cli[key]), key
    assert len(steps_app) == len(steps_cli) == 2
    assert steps_app == steps_cli
    assert steps_app[1]["actions"] == [{"concept": "grass", "kind": "remove", "class_name": "triangle",
                                        "scale": None, "magnitude": None, "group": None}]
