"""Image classification data for training: columns and labels from the dataset's features, a seeded validation
split carved from the training split, and images decoded once (cached by `datasets`) into one uint8 tensor.
"""

import numpy as np
import torch
from datasets import Array3D, ClassLabel, Dataset, DatasetDict, Features, Image, load_dataset

from .augmentation import BatchTransform

IMAGE_COLUMNS = ("img", "image")
LABEL_COLUMNS = ("label", "labels", "fine_label")


def _find_column(features: Features, dataset_name: str, name: str | None, candidates: tuple[str, ...],
                 feature_type: type, flag: str) -> str:
    if name is None:
        name = next((c for c in candidates if isinstance(features.get(c), feature_type)), None)
    if name not in features or not isinstance(features[name], feature_type):
        kind = "image" if feature_type is Image else "label"
        raise ValueError(
            f"dataset {dataset_name!r} has no {kind} column {name or candidates!r}: its columns are {list(features)}; "
            f"allowed: a column of type {feature_type.__name__}, named with {flag}"
        )
    return name


def find_columns(features: Features, dataset_name: str, image_column: str | None = None,
                 label_column: str | None = None) -> tuple[str, str]:
    """The image and label columns: the ones named, else the first known name with the right feature type."""
    return (
        _find_column(features, dataset_name, image_column, IMAGE_COLUMNS, Image, "--image_column_name"),
        _find_column(features, dataset_name, label_column, LABEL_COLUMNS, ClassLabel, "--label_column_name"),
    )


def load_train_validation(
    dataset_name: str,
    dataset_config_name: str | None = None,
    validation_size: int = 5000,
    split_seed: int = 42,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
) -> tuple[DatasetDict, str, str, dict[int, str]]:
    """Loads the `train` split and carves a stratified validation split from it with a fixed seed.

    The test split is not touched: it is kept for the final evaluation, never for model selection.
    Returns the two splits, the image and label column names, and `id2label` from the `ClassLabel`.
    """
    train = load_dataset(dataset_name, dataset_config_name, split="train")
    image_column, label_column = find_columns(train.features, dataset_name, image_column, label_column)
    if not 0 < validation_size < len(train):
        raise ValueError(f"validation_size={validation_size} is invalid: allowed 1..{len(train) - 1} "
                         f"(the training split of {dataset_name!r} has {len(train)} images)")
    splits = train.train_test_split(test_size=validation_size, seed=split_seed, stratify_by_column=label_column)
    splits = DatasetDict(train=splits["train"], validation=splits["test"])
    for name, limit in (("train", max_train_samples), ("validation", max_eval_samples)):
        if limit is not None:
            splits[name] = splits[name].select(range(min(limit, len(splits[name]))))
    names = train.features[label_column].names
    return splits, image_column, label_column, dict(enumerate(names))


def _decode_batch(batch: dict, image_column: str, label_column: str, mode: str, size: tuple[int, int]) -> dict:
    pixels = []
    for image in batch[image_column]:
        if image.size != size:
            raise ValueError(f"an image is {image.size[0]}x{image.size[1]} where the first was {size[0]}x{size[1]}; "
                             "allowed: one size for the whole data set")
        pixels.append(np.asarray(image.convert(mode)).reshape(size[1], size[0], -1).transpose(2, 0, 1))
    return {"pixels": pixels, "labels": batch[label_column]}


def decode_images(dataset: Dataset, image_column: str, label_column: str, num_channels: int) -> tuple:
    """Decodes every image once into `(N, C, H, W)` uint8 (cached on disk by `datasets`), plus int64 labels.

    1-channel models get grayscale ("L"), others RGB: the conversions their image processors apply.
    """
    first = dataset[0][image_column]
    mode = "L" if num_channels == 1 else "RGB"
    width, height = first.size
    features = Features({"pixels": Array3D((num_channels, height, width), "uint8"),
                         "labels": dataset.features[label_column]})
    decoded = dataset.map(
        _decode_batch,
        batched=True,
        remove_columns=dataset.column_names,
        features=features,
        fn_kwargs={"image_column": image_column, "label_column": label_column, "mode": mode, "size": (width, height)},
        desc="Decoding images (once; cached)",
    )
    # Read the uint8 storage straight from Arrow: the numpy formatter would widen it to int64.
    pixels = decoded.data.column("pixels").combine_chunks().storage.flatten().flatten().flatten().to_numpy()
    labels = decoded.data.column("labels").to_numpy()
    pixels = torch.from_numpy(pixels.reshape(len(decoded), num_channels, height, width).copy())  # into RAM, writable
    return pixels, torch.tensor(labels, dtype=torch.long)


class DecodedImages(torch.utils.data.Dataset):
    """Decoded images served a whole batch at a time: `DataLoader` calls `__getitems__` with the batch's indices
    and the batch transform runs once on the stacked uint8 tensor.

    Augmentation randomness is seeded by the batch's indices, so a resumed run sees the same crops and flips.
    """

    def __init__(self, pixels: torch.Tensor, labels: torch.Tensor, transform: BatchTransform, seed: int = 0):
        self.pixels, self.labels, self.transform, self.seed = pixels, labels, transform, seed

    def __len__(self) -> int:
        return len(self.labels)

    def __getitems__(self, indices: list[int]) -> dict:
        generator = torch.Generator().manual_seed(hash((self.seed, *indices)) & (2**63 - 1))
        index = torch.as_tensor(indices)
        return {"pixel_values": self.transform(self.pixels[index], generator), "labels": self.labels[index]}

    def __getitem__(self, index: int) -> dict:
        batch = self.__getitems__([index])
        return {"pixel_values": batch["pixel_values"][0], "labels": batch["labels"][0]}

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.pixels.shape[-2:])


def collate_batch(batch: dict | list[dict]) -> dict:
    """`DataLoader` collate function for `DecodedImages`: batches arrive already built by `__getitems__`."""
    if isinstance(batch, dict):
        return batch
    return {key: torch.stack([sample[key] for sample in batch]) for key in batch[0]}
