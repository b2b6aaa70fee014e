"""Shared fixtures: tiny configs, real CIFAR-10 / MNIST images from ../shared/data, offline Hub settings."""

import importlib.util
import os
from pathlib import Path

# No test may reach the network: everything is local or served on loopback.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
from datasets import load_dataset  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("LOOPY_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


def real_images(name: str, split: str, count: int) -> list[dict]:
    """The first `count` rows of a real data set in the Hub's parquet layout, streamed (nothing is cached)."""
    path = DATA_DIR / name
    if not path.is_dir():
        raise FileNotFoundError(f"real data set {name!r} not found at {path}; set LOOPY_DATA_DIR to the data folder")
    rows = load_dataset(str(path), split=split, streaming=True).take(count)
    return list(rows)


@pytest.fixture(scope="session")
def cifar10_test_rows() -> list[dict]:
    """16 real CIFAR-10 test images: dicts with `img` (PIL RGB, 32x32) and `label`."""
    return real_images("cifar10", "test", 16)


@pytest.fixture(scope="session")
def mnist_test_rows() -> list[dict]:
    """8 real MNIST test images: dicts with `image` (PIL L, 28x28) and `label`."""
    return real_images("mnist", "test", 8)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


def load_script(name: str):
    """Import scripts/<name>.py as a module without putting scripts/ on sys.path (its evaluate.py would shadow
    the `evaluate` library)."""
    spec = importlib.util.spec_from_file_location(f"loopy_script_{name}", REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
