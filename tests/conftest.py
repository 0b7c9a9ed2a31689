"""Test-wide settings: no test may reach a network, and torch stays on a small thread budget."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))

from infi.demo.plugin import register  # noqa: E402

register()  # as the app and the CLI do, so a checkout that was never pip-installed works too


@pytest.fixture(scope="session")
def demo_encoder():
    from infi.encoders import ClipEncoder

    return ClipEncoder.load("demo")


@pytest.fixture(scope="session")
def demo_teacher():
    from infi.demo.teacher import load_demo_teacher

    return load_demo_teacher()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Each test gets its own cache folder, so the app's local autosave never reaches
    ~/.cache and one test's autosave is never offered to another."""
    monkeypatch.setenv("INFI_CACHE_DIR", str(tmp_path / "infi-cache"))
