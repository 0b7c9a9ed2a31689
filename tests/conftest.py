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


@pytest.fixture(scope="session")
def ray_cluster():
    """A local two-CPU Ray cluster, as the README's test command exercises it (no skip)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def ray_store(tmp_path_factory, ray_cluster):
    """A 200-image Shapes World folder embedded with Ray (demo encoder and concepts) into a store,
    and a predictions file keyed by its ids."""
    from types import SimpleNamespace

    from infi.bulk_embed import embed_to_store
    from infi.corpus import preset
    from infi.store import open_store
    from tests.helpers import teacher_file, world_folder

    root = tmp_path_factory.mktemp("ray-store")
    images = world_folder(root / "images", 200, seed=5)
    manifest = embed_to_store(images, root / "store", "demo", preset("demo"), engine="ray")
    store = open_store(root / "store")
    return SimpleNamespace(images=images, path=root / "store", manifest=manifest, store=store,
                           predictions=teacher_file(store, root / "predictions.csv"))
