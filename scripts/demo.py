"""The main job for now: build the three headline models, save one, classify real CIFAR-10 test images.

    python scripts/demo.py [--dataset_name ../shared/data/cifar10] [--output_dir out/demo] [--num_images 8]

The models are untrained (random weights), so predictions are at chance level: the demo shows the package's
path end to end (presets -> model -> checkpoint folder -> `pipeline`), not accuracy.
"""

import argparse
from pathlib import Path

from datasets import load_dataset
from transformers import pipeline
from transformers.utils import logging as transformers_logging

from loopy_hf import LoopyForImageClassification, count_flops, count_parameters, load_preset, save_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[1]
HEADLINE_PRESETS = ("vanilla", "loopy", "deep")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_name", default=str(REPO_ROOT.parent / "shared" / "data" / "cifar10"),
                        help="a Hub id (uoft-cs/cifar10) or a local folder in the Hub's parquet layout")
    parser.add_argument("--output_dir", default=str(REPO_ROOT / "out" / "demo"))
    parser.add_argument("--num_images", type=int, default=8)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    transformers_logging.disable_progress_bar()
    print("The three headline models of the paper:")
    print(f"{'preset':10} {'conv layers':>11} {'unrolls':>7} {'parameters':>11} {'GFLOPs/image':>12}")
    for name in HEADLINE_PRESETS:
        config = load_preset(name)
        print(f"{name:10} {config.num_layers:>11} {config.num_unrolls:>7} {count_parameters(config):>11,} "
              f"{count_flops(config) / 1e9:>12.3f}")

    folder = save_checkpoint(LoopyForImageClassification(load_preset("loopy")), Path(args.output_dir) / "loopy")
    print(f"\nSaved an untrained `loopy` model to {folder}: {sorted(p.name for p in folder.iterdir())}")

    rows = list(load_dataset(args.dataset_name, split="test", streaming=True).take(args.num_images))
    image_column = "img" if "img" in rows[0] else "image"
    classifier = pipeline("image-classification", model=str(folder))
    predictions = classifier([row[image_column] for row in rows], top_k=1)
    names = classifier.model.config.id2label
    print(f"\n`pipeline('image-classification')` on {len(rows)} real CIFAR-10 test images (untrained: chance level):")
    for row, prediction in zip(rows, predictions):
        print(f"  true {names[row['label']]:>10}   predicted {prediction[0]['label']:>10} ({prediction[0]['score']:.2f})")


if __name__ == "__main__":
    main()
