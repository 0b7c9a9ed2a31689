"""Settings: one source of defaults and ranges for the library, the CLI and the pages."""

from dataclasses import fields

import pytest

from infi.config import DistillConfig, PRGConfig
from infi.errors import ConfigError
from infi.student import ConceptStudent
from infi.ui import state
from tests.helpers import app_with_concepts


@pytest.mark.parametrize("config, message", [
    (DistillConfig(n_members=0), "n_members: must be >= 1"),
    (DistillConfig(n_members=2.5), "n_members: must be a whole number"),
    (DistillConfig(alpha=float("nan")), "alpha: must be a number"),
    (DistillConfig(validation_share=0.0), "validation_share: must be > 0"),
    (PRGConfig(method="magic"), "method: choose from"),
    (PRGConfig(tau_edge=0.0), "tau_edge: must be > 0"),
    (PRGConfig(w_node=0, w_edge=0, w_relation=0, w_pseudo=0), "switch at least one loss term on"),
    (PRGConfig(batch_size=1), "batch_size: must be >= 2"),
])
def test_a_bad_setting_is_named(config, message):
    with pytest.raises(ConfigError, match=message):
        config.validate()


def test_defaults_are_valid_and_match_the_student():
    DistillConfig().validate()
    PRGConfig().validate()
    student = ConceptStudent()
    params = DistillConfig().student_params()
    # The app and the CLI default to a readable student (a NEC target); the estimator, like any
    # scikit-learn estimator, defaults to its plain form (a fixed λ).
    assert params.pop("nec") <= 10 and student.nec is None
    for name, value in params.items():
        assert getattr(student, name) == value, name


def test_every_field_has_help():
    for cls in (DistillConfig, PRGConfig):
        for f in fields(cls):
            assert len(f.metadata["help"]) > 5, (cls.__name__, f.name)


def test_the_pages_start_from_the_config_defaults():
    """Drift bug: the app's PRG defaults (6 epochs, batch 64) differed from PRGConfig (10, 128)
    and k, λ and the held-out share were typed again in the Distill view."""
    at = app_with_concepts(80)
    at.switch_page("pages/distill.py").run()
    d = DistillConfig()
    assert at.number_input(key=state.MEMBERS).value == d.n_members
    assert at.number_input(key=state.NEC).value == d.nec  # readable by default
    at.radio(key=state.SPARSITY).set_value("Fixed λ").run()
    assert at.number_input(key=state.ALPHA).value == d.alpha
    assert at.slider(key=state.VAL_SHARE).value == d.validation_share
    at.radio(key=state.METHOD).set_value(at.radio(key=state.METHOD).options[1]).run()
    p = PRGConfig()
    assert at.number_input(key=state.PRG_EPOCHS).value == p.epochs
    assert at.number_input(key=state.PRG_BATCH).value == p.batch_size
    assert at.number_input(key=state.PRG_LR).value == p.lr
    source = at.radio(key=state.COMPACT_SOURCE).value
    at.selectbox(key=state.compact_method_key(source)).set_value("prg").run()  # PRG's own knobs appear
    assert at.number_input(key=state.PRG_TAU_EDGE).value == p.tau_edge
    assert not at.exception


def test_every_cli_help_renders():
    """A '%' in a setting's help once crashed `infi tune --help` (argparse formats help text)."""
    import argparse

    from infi.config import TuneConfig

    for cls in (DistillConfig, PRGConfig, TuneConfig):
        parser = argparse.ArgumentParser()
        cls.add_arguments(parser)
        assert "default" in parser.format_help()
