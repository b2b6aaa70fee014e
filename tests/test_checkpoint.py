"""Checkpoint folders: safetensors round trip, remote code without the package, processors and pipeline."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification, pipeline

from loopy_hf import (
    LoopyForImageClassification,
    LoopyImageProcessor,
    LoopyModel,
    image_processor_for,
    load_preset,
    save_checkpoint,
)


@pytest.fixture(scope="module")
def cifar_checkpoint(tmp_path_factory):
    """An untrained `paper-loopy` model saved through the documented path, with non-trivial BatchNorm statistics."""
    model = LoopyForImageClassification(load_preset("paper-loopy")).train()
    with torch.no_grad():
        model(torch.randn(16, 3, 32, 32) * 2 + 0.5)  # moves every running statistic away from its init
    folder = tmp_path_factory.mktemp("checkpoints") / "paper-loopy"
    save_checkpoint(model.eval(), folder)
    return model, folder


@pytest.fixture(scope="module")
def mnist_checkpoint(tmp_path_factory):
    model = LoopyForImageClassification(load_preset("mnist-k2")).eval()
    folder = tmp_path_factory.mktemp("checkpoints") / "mnist-k2"
    save_checkpoint(model, folder)
    return model, folder


def test_checkpoint_folder_holds_safetensors_config_code_and_processor(cifar_checkpoint):
    _, folder = cifar_checkpoint
    files = sorted(p.name for p in folder.iterdir())
    assert files == [
        "config.json", "configuration_loopy.py", "model.safetensors", "modeling_loopy.py", "preprocessor_config.json"
    ]
    config = AutoModelForImageClassification.from_pretrained(folder).config
    assert config.auto_map == {
        "AutoConfig": "configuration_loopy.LoopyConfig",
        "AutoModelForImageClassification": "modeling_loopy.LoopyForImageClassification",
    }


def test_save_and_reload_gives_identical_logits(cifar_checkpoint):
    model, folder = cifar_checkpoint
    pixel_values = torch.randn(4, 3, 32, 32)
    reloaded = AutoModelForImageClassification.from_pretrained(folder).eval()
    assert isinstance(reloaded, LoopyForImageClassification)
    assert torch.equal(reloaded(pixel_values).logits, model(pixel_values).logits)
    for key, value in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key
    backbone = AutoModel.from_pretrained(folder).eval()
    assert isinstance(backbone, LoopyModel)
    assert torch.equal(backbone(pixel_values).pooler_output, model.loopy(pixel_values).pooler_output)


def test_remote_code_loads_in_a_fresh_process_without_the_package(cifar_checkpoint, mnist_checkpoint, tmp_path):
    model, folder = cifar_checkpoint
    _, mnist_folder = mnist_checkpoint
    pixel_values = torch.randn(2, 3, 32, 32)
    save_file({"pixel_values": pixel_values, "logits": model(pixel_values).logits.detach()}, tmp_path / "io.safetensors")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["loopy_hf"] = None  # any import of the package now fails
        import torch
        from PIL import Image
        from safetensors.torch import load_file
        from transformers import AutoImageProcessor, AutoModelForImageClassification
        io = load_file({str(tmp_path / "io.safetensors")!r})
        model = AutoModelForImageClassification.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        assert torch.equal(model(io["pixel_values"]).logits, io["logits"])
        processor = AutoImageProcessor.from_pretrained({str(mnist_folder)!r}, trust_remote_code=True)
        assert type(processor).__name__ == "LoopyImageProcessor", type(processor)
        gray = processor(Image.new("RGB", (40, 30), (200, 10, 10)), return_tensors="pt")["pixel_values"]
        assert gray.shape == (1, 1, 28, 28), gray.shape
        assert not any(name.startswith("loopy_hf") for name, module in sys.modules.items() if module is not None)
        print("remote code ok")
        """
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "remote code ok" in result.stdout


def test_image_processor_matches_the_config():
    cifar = image_processor_for(load_preset("loopy"))
    assert cifar.size == {"height": 32, "width": 32}
    assert list(cifar.image_mean) == [0.4914, 0.4822, 0.4465] and list(cifar.image_std) == [0.2470, 0.2435, 0.2616]
    mnist = image_processor_for(load_preset("mnist-k1"))
    assert isinstance(mnist, LoopyImageProcessor)
    assert mnist.size == {"height": 28, "width": 28} and list(mnist.image_mean) == [0.1307]
    with pytest.raises(ValueError, match="num_channels=4 has no default image processor"):
        image_processor_for(load_preset("loopy", num_channels=4, hidden_sizes=[8, 4], loop_end_layer=-1))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
@pytest.mark.parametrize("size", [(32, 32), (57, 41)])
def test_processors_accept_any_mode_and_size(cifar_checkpoint, mnist_checkpoint, mode, size):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).convert(mode)
    for (model, folder), channels, side in ((cifar_checkpoint, 3, 32), (mnist_checkpoint, 1, 28)):
        processor = AutoImageProcessor.from_pretrained(folder)
        pixel_values = processor(image, return_tensors="pt")["pixel_values"]
        assert pixel_values.shape == (1, channels, side, side)
        assert model(pixel_values).logits.shape == (1, 10)


def test_grayscale_processor_uses_luma_and_mnist_statistics(mnist_test_rows):
    processor = image_processor_for(load_preset("mnist-k1"))
    digit = mnist_test_rows[0]["image"]
    expected = (np.asarray(digit, dtype=np.float32) / 255 - 0.1307) / 0.3081
    for image in (digit, digit.convert("RGB"), np.asarray(digit.convert("RGB"))):
        pixel_values = processor(image, return_tensors="pt")["pixel_values"]
        np.testing.assert_allclose(pixel_values[0, 0].numpy(), expected, atol=1e-5)


def test_pipeline_classifies_real_cifar10_test_images(cifar_checkpoint, cifar10_test_rows):
    model, folder = cifar_checkpoint
    classifier = pipeline("image-classification", model=str(folder))
    images = [row["img"] for row in cifar10_test_rows[:8]]
    predictions = classifier(images, top_k=3)
    class_names = set(model.config.id2label.values())
    assert len(predictions) == 8
    processor = AutoImageProcessor.from_pretrained(folder)
    with torch.no_grad():
        logits = model(processor(images, return_tensors="pt")["pixel_values"]).logits
    for prediction, image_logits in zip(predictions, logits):
        assert len(prediction) == 3 and {p["label"] for p in prediction} <= class_names
        assert prediction[0]["label"] == model.config.id2label[int(image_logits.argmax())]
        assert prediction[0]["score"] == pytest.approx(float(image_logits.softmax(-1).max()), abs=1e-5)
    # Other sizes and modes of the same images go through too.
    assert len(classifier([images[0].convert("L"), images[1].convert("RGBA").resize((64, 48))])) == 2


def test_pipeline_classifies_real_mnist_digits(mnist_checkpoint, mnist_test_rows):
    _, folder = mnist_checkpoint
    classifier = pipeline("image-classification", model=str(folder))
    predictions = classifier([row["image"] for row in mnist_test_rows], top_k=1)
    assert len(predictions) == len(mnist_test_rows)
    assert all(p[0]["label"] in [str(d) for d in range(10)] for p in predictions)


def test_save_checkpoint_keeps_the_old_files_when_a_save_fails(cifar_checkpoint, tmp_path, monkeypatch):
    model, _ = cifar_checkpoint
    folder = tmp_path / "ckpt"
    save_checkpoint(model, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(type(image_processor_for(model.config)), "save_pretrained", fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(LoopyForImageClassification(model.config), folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no staging folder left behind
