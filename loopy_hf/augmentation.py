"""Whole-batch tensor ops that turn decoded uint8 images into model inputs (as airbench does).

One call handles a batch: random crop with padding and horizontal flip (training only), then the same
rescale-and-normalize as the checkpoint's image processor. No per-sample Python, no PIL.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def random_crop_and_flip(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Pads a `(B, C, H, W)` batch with zeros by `padding`, takes one random `H x W` window per image and mirrors
    a random half of the images left to right, all in a single gather."""
    batch, channels, height, width = images.shape
    padded_width = width + 2 * padding
    padded = F.pad(images, (padding,) * 4).flatten(2)
    top = torch.randint(0, 2 * padding + 1, (batch, 1), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (batch, 1), generator=generator)
    flip = torch.rand(batch, 1, generator=generator) < 0.5
    # Flat index of every output pixel in a padded image, for a window at (0, 0): as is and mirrored.
    rows = torch.arange(height).view(-1, 1) * padded_width
    window = (rows + torch.arange(width)).view(1, -1)
    mirrored = (rows + torch.arange(width - 1, -1, -1)).view(1, -1)
    index = torch.where(flip, mirrored, window).add_(top * padded_width + left)
    return padded.gather(2, index.unsqueeze(1).expand(batch, channels, height * width)).view(batch, channels, height, width)


@dataclass
class BatchTransform:
    """uint8 `(B, C, H, W)` -> normalized float32 inputs, with optional crop-and-flip augmentation.

    `image_mean` and `image_std` are those of the checkpoint's image processor, so training inputs match what
    `pipeline` feeds the model at inference.
    """

    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]
    augment: bool = False
    crop_padding: int = 4
    channels_last: bool = False

    def __post_init__(self):
        std = torch.tensor(self.image_std, dtype=torch.float32).view(1, -1, 1, 1)
        mean = torch.tensor(self.image_mean, dtype=torch.float32).view(1, -1, 1, 1)
        # (x / 255 - mean) / std as one in-place multiply and add.
        self._scale, self._shift = 1 / (255 * std), -mean / std

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.augment:
            generator = generator or torch.Generator().manual_seed(0)
            images = random_crop_and_flip(images, self.crop_padding, generator)
        pixel_values = images.float().mul_(self._scale).add_(self._shift)
        if self.channels_last:
            pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
        return pixel_values
