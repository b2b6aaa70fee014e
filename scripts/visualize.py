"""PNG grids of the paper's visualizations for a loopy checkpoint (a folder or a Hub id):

    python scripts/visualize.py --model out/headline/loopy --layer 0 --filter 0 --output docs/guided_backprop_loopy.png
    python scripts/visualize.py --model out/paper-mul-layer --merge_maps --output docs/merge_maps_multiply.png

Guided backpropagation per unroll: one row per test image, the image, then the input gradient of the summed
activation map of one filter of conv `--layer` at unrolls 1..k. Merge maps: the image, then merge(x, out_t) at
unrolls 2..k. Every panel is min-max rescaled to 0..255; RGB for 3-channel models, a colormap for 1-channel ones.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from datasets import load_dataset  # noqa: E402
from transformers import AutoImageProcessor, AutoModelForImageClassification  # noqa: E402

import loopy_hf  # noqa: E402,F401 - registers the loopy classes
from loopy_hf.data import find_columns  # noqa: E402
from loopy_hf.visualization import guided_backprop_per_unroll, merge_maps, min_max_to_uint8  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a loopy checkpoint folder or Hub id")
    parser.add_argument("--revision", default=None)
    parser.add_argument("--dataset_name", default=str(REPO_ROOT.parent / "shared" / "data" / "cifar10"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--images", type=int, nargs="+", default=[0, 1, 2, 3], help="indices in the split")
    parser.add_argument("--merge_maps", action="store_true", help="merge-node maps instead of guided backprop")
    parser.add_argument("--layer", type=int, default=0, help="conv layer (inside the loop) for guided backprop")
    parser.add_argument("--filter", type=int, default=0, help="filter of that layer")
    parser.add_argument("--output", type=Path, required=True)
    return parser.parse_args(argv)


def show(axis, image: torch.Tensor) -> None:
    """`(C, H, W)` uint8: RGB as is, one channel through a colormap."""
    if image.shape[0] == 1:
        axis.imshow(image[0].numpy(), cmap="viridis")
    else:
        axis.imshow(image.permute(1, 2, 0).numpy())
    axis.set_xticks([])
    axis.set_yticks([])


def draw_grid(originals: torch.Tensor, panels: torch.Tensor, first_unroll: int, title: str, path: Path) -> None:
    """`originals (B, C, H, W)`, `panels (T, B, C, H, W)`: a row per image, a column per unroll."""
    rows, columns = originals.shape[0], panels.shape[0] + 1
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.6 * rows + 0.6), squeeze=False)
    for row in range(rows):
        show(axes[row][0], min_max_to_uint8(originals[row]))
        for t in range(panels.shape[0]):
            show(axes[row][t + 1], min_max_to_uint8(panels[t, row]))
    axes[0][0].set_title("image", fontsize=9)
    for t in range(panels.shape[0]):
        axes[0][t + 1].set_title(f"unroll {first_unroll + t}", fontsize=9)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None) -> Path:
    args = parse_args(argv)
    model = AutoModelForImageClassification.from_pretrained(args.model, revision=args.revision).eval()
    processor = AutoImageProcessor.from_pretrained(args.model, revision=args.revision)
    split = load_dataset(args.dataset_name, split=args.split)
    image_column, _ = find_columns(split.features, args.dataset_name)
    images = [split[i][image_column] for i in args.images]
    pixel_values = processor(images, return_tensors="pt")["pixel_values"]
    name = args.model.rstrip("/").split("/")[-1]
    if args.merge_maps:
        panels = merge_maps(model, pixel_values)
        title = f"{name}: merge(x, out) ({model.config.composition}) per unroll"
        draw_grid(pixel_values, panels, 2, title, args.output)
    else:
        panels = guided_backprop_per_unroll(model, pixel_values, args.layer, args.filter)
        title = f"{name}: guided backprop, conv {args.layer + 1} filter {args.filter}, per unroll"
        draw_grid(pixel_values, panels, 1, title, args.output)
    print(f"wrote {args.output}")
    return args.output


if __name__ == "__main__":
    main()
