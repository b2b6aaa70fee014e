"""The training data path: decode once, batched augmentation, inputs identical to the image processor's."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import ClassLabel, Dataset, Features, Value

from conftest import DATA_DIR
from loopy_hf import image_processor_for, load_preset
from loopy_hf.augmentation import BatchTransform, random_crop_and_flip
from loopy_hf.data import DecodedImages, collate_batch, decode_images, find_columns, load_train_validation


def rows_dataset(rows: list[dict], image_key: str) -> Dataset:
    return Dataset.from_dict({"img": [r[image_key] for r in rows], "label": [r["label"] for r in rows]})


def test_training_inputs_equal_the_image_processor_outputs(cifar10_test_rows, mnist_test_rows):
    for rows, key, preset in ((cifar10_test_rows, "img", "loopy"), (mnist_test_rows, "image", "mnist-k1")):
        config = load_preset(preset)
        processor = image_processor_for(config)
        pixels, labels = decode_images(rows_dataset(rows, key), "img", "label", config.num_channels)
        assert pixels.dtype == torch.uint8 and pixels.shape[1] == config.num_channels
        assert labels.tolist() == [r["label"] for r in rows]
        transform = BatchTransform(processor.image_mean, processor.image_std)
        expected = processor([r[key] for r in rows], return_tensors="pt")["pixel_values"]
        torch.testing.assert_close(transform(pixels), expected, rtol=0, atol=1e-5)


def test_crop_and_flip_takes_a_padded_window_of_each_image():
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    out = random_crop_and_flip(images, padding=2, generator=torch.Generator().manual_seed(1))
    padded = F.pad(images, (2,) * 4)
    flipped_any = shifted_any = False
    for image, result in zip(padded, out):
        matches = [(dy, dx, flip) for dy in range(5) for dx in range(5) for flip in (False, True)
                   if torch.equal(result, (lambda w: w.flip(-1) if flip else w)(image[:, dy:dy + 8, dx:dx + 8]))]
        assert matches, "output is not a (possibly mirrored) window of the padded image"
        flipped_any |= any(m[2] for m in matches)
        shifted_any |= any(m[:2] != (2, 2) for m in matches)
    assert flipped_any and shifted_any


def test_augmentation_is_seeded_by_the_batch_indices():
    pixels = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    dataset = DecodedImages(pixels, torch.arange(64), BatchTransform((0.5,) * 3, (0.25,) * 3, augment=True), seed=3)
    first, again = dataset.__getitems__([1, 5, 9, 13]), dataset.__getitems__([1, 5, 9, 13])
    torch.testing.assert_close(first["pixel_values"], again["pixel_values"])
    assert first["labels"].tolist() == [1, 5, 9, 13]
    other_seed = DecodedImages(pixels, torch.arange(64), dataset.transform, seed=4).__getitems__([1, 5, 9, 13])
    assert not torch.equal(first["pixel_values"], other_seed["pixel_values"])


def test_data_loader_serves_whole_batches():
    pixels = torch.randint(0, 256, (20, 3, 8, 8), dtype=torch.uint8)
    dataset = DecodedImages(pixels, torch.arange(20) % 10, BatchTransform((0.5,) * 3, (0.25,) * 3))
    loader = torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=True, collate_fn=collate_batch)
    batches = list(loader)
    assert [len(b["labels"]) for b in batches] == [8, 8, 4]
    assert batches[0]["pixel_values"].shape == (8, 3, 8, 8) and batches[0]["pixel_values"].dtype == torch.float32
    channels_last = BatchTransform((0.5,) * 3, (0.25,) * 3, channels_last=True)(pixels)
    assert channels_last.is_contiguous(memory_format=torch.channels_last)


def test_validation_split_is_stratified_seeded_and_disjoint():
    splits, image_column, label_column, id2label = load_train_validation(
        str(DATA_DIR / "cifar10"), validation_size=1000, split_seed=7
    )
    assert (image_column, label_column) == ("img", "label")
    assert id2label[0] == "airplane" and len(id2label) == 10
    assert len(splits["train"]) == 49_000 and len(splits["validation"]) == 1000
    assert np.bincount(splits["validation"]["label"]).tolist() == [100] * 10
    again, *_ = load_train_validation(str(DATA_DIR / "cifar10"), validation_size=1000, split_seed=7)
    assert again["validation"]["label"] == splits["validation"]["label"]
    limited, *_ = load_train_validation(str(DATA_DIR / "cifar10"), validation_size=1000, split_seed=7,
                                        max_train_samples=50, max_eval_samples=20)
    assert (len(limited["train"]), len(limited["validation"])) == (50, 20)


def test_columns_are_found_or_refused_by_name():
    features = Features({"text": Value("string"), "label": ClassLabel(names=["a", "b"])})
    with pytest.raises(ValueError, match=r"dataset 'toy' has no image column .*columns are \['text', 'label'\]"):
        find_columns(features, "toy")
    with pytest.raises(ValueError, match="validation_size=60000 is invalid"):
        load_train_validation(str(DATA_DIR / "mnist"), validation_size=60_000)
