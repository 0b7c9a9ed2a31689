"""Chart builders: each returns an altair chart with a title, axis titles and tooltips."""

import numpy as np

from infi.ui import charts


def spec(chart):
    d = chart.to_dict()
    return d, str(d)


def test_class_counts_counts_each_class():
    d, text = spec(charts.class_counts(np.array([0, 0, 1, 2, -1]), ["a", "b", "c"]))
    values = list(d["datasets"].values())[0]
    assert [v["images"] for v in values] == [2, 1, 1]
    assert d["title"] == "Images per class" and "tooltip" in d["encoding"]
    assert d["encoding"]["x"]["title"] == "Class"


def test_confidence_histogram_uses_top1_probability():
    P = np.array([[0.9, 0.1], [0.4, 0.6]])
    d, _ = spec(charts.confidence_histogram(P))
    values = list(d["datasets"].values())[0]
    assert [v["confidence"] for v in values] == [0.9, 0.6]
    assert d["encoding"]["x"]["title"] == "Top-1 probability"


def test_heatmap_and_confusion_cover_every_cell():
    d, _ = spec(charts.class_concept_heatmap(np.arange(6).reshape(2, 3), ["a", "b"], ["x", "y", "z"]))
    assert len(list(d["datasets"].values())[0]) == 6 and d["encoding"]["color"]["title"] == "Mean score"
    d, text = spec(charts.confusion_heatmap(np.array([[3, 1], [0, 2]]), ["a", "b"]))
    cells = list(d["datasets"].values())[0]
    assert {(c["teacher"], c["student"]): c["images"] for c in cells}[("a", "b")] == 1
    assert "Teacher's class" in text and "Student's class" in text


def test_influence_bars_sort_by_magnitude_and_mark_direction():
    d, _ = spec(charts.influence_bars(np.array([0.1, -2.0, 0.5]), ["x", "y", "z"], "cls", top=2))
    values = list(d["datasets"].values())[0]
    assert [v["concept"] for v in values] == ["y", "z"]
    assert [v["direction"] for v in values] == ["lowers", "raises"]
    assert "cls" in d["title"]


def test_contributions_and_per_class_bars():
    d, _ = spec(charts.contributions_bars(np.array([0.0, 3.0, -1.0]), ["x", "y", "z"], "why", top=2))
    assert [v["concept"] for v in list(d["datasets"].values())[0]] == ["y", "z"]
    d, _ = spec(charts.per_class_bars([{"class": "a", "f1": 0.5}, {"class": "b", "f1": 1.0}], "f1", "t", "F1"))
    assert d["encoding"]["y"]["scale"]["domain"] == [0, 1]


def test_overlay_reddens_high_scoring_patches():
    image = np.full((8, 8, 3), 128, np.uint8)
    score = np.array([[0.0, 0.0], [0.0, 1.0]])
    out = charts.overlay(image, score)
    assert out.shape == (8, 8, 3)
    assert out[6, 6, 0] > out[1, 1, 0] and np.array_equal(out[1, 1], image[1, 1])


def test_training_curves_put_loss_and_agreement_on_their_own_axes():
    history = [{"epoch": 1, "loss": 5.7, "val_agreement": 0.4}, {"epoch": 2, "loss": 3.8, "val_agreement": 0.7}]
    d, _ = spec(charts.loss_curves(history, "PRG"))
    assert d["title"] == "PRG" and d["resolve"]["scale"]["y"] == "independent"
    loss, rate = d["layer"]
    data = d["datasets"]
    assert {v["metric"] for v in data[loss["data"]["name"]]} == {"loss"}
    assert {v["metric"] for v in data[rate["data"]["name"]]} == {"val_agreement"}
    assert rate["encoding"]["y"]["scale"]["domain"] == [0, 1] and rate["encoding"]["y"]["axis"]["format"] == "%"
    assert loss["encoding"]["x"]["axis"]["tickMinStep"] == 1  # whole epochs, not 1.05


def test_nec_path_plots_fidelity_against_nec_with_the_chosen_student():
    from infi.ui.charts import nec_path

    path = [{"alpha": 0.02, "nec": 2.0, "fidelity": 0.9}, {"alpha": 0.01, "nec": 5.5, "fidelity": 0.95}]
    spec = nec_path(path, chosen=5.5).to_dict()
    assert spec["layer"][0]["encoding"]["x"]["field"] == "nec"
    assert spec["layer"][0]["encoding"]["y"]["field"] == "fidelity"
    assert len(spec["layer"]) == 2  # the line and the rule at the chosen NEC
    assert len(nec_path(path).to_dict()["layer"]) == 1


def test_selectable_charts_name_their_selections():
    import numpy as np

    from infi.ui.charts import confusion_heatmap, influence_bars, weight_across_classes

    conf = confusion_heatmap(np.eye(2, dtype=int) * 3, ["a", "b"], select=True).to_dict()
    assert [p["name"] for p in conf["params"]] == ["cell"]  # altair lifts a layer's params to the top
    assert conf["params"][0]["select"]["fields"] == ["teacher", "student"]
    assert conf["params"][0]["views"] == [conf["layer"][0]["name"]]  # on the cells, not the numbers
    bars = influence_bars(np.array([0.5, -1.0, 0.0]), ["x", "y", "z"], "a", select=True).to_dict()
    assert bars["params"][0]["name"] == "concept"
    across = weight_across_classes(np.array([0.4, -0.2]), ["a", "b"], "x").to_dict()
    assert across["encoding"]["x"]["field"] == "class"
    assert "params" not in confusion_heatmap(np.eye(2, dtype=int), ["a", "b"]).to_dict()
