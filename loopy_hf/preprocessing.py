"""The image processor that matches a config: one call for training, inference and every saved checkpoint."""

from transformers import ViTImageProcessorPil

from .configuration_loopy import LoopyConfig
from .image_processing_loopy import LoopyImageProcessor

# Per-channel statistics of the training splits (../shared/data/README.md).
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


def image_processor_for(
    config: LoopyConfig,
    image_mean: list[float] | tuple[float, ...] | None = None,
    image_std: list[float] | tuple[float, ...] | None = None,
):
    """Preprocessing for `config`: resize to `image_size`, scale to [0, 1], normalize.

    RGB models get the built-in `ViTImageProcessor` (its PIL backend, which needs no torchvision; CIFAR-10 mean/std unless given; any image mode is converted
    to RGB); 1-channel models get `LoopyImageProcessor`, which converts any image to grayscale (MNIST mean/std).
    """
    size = {"height": config.image_size, "width": config.image_size}
    if config.num_channels == 1:
        mean, std = image_mean or MNIST_MEAN, image_std or MNIST_STD
        return LoopyImageProcessor(size=size, image_mean=list(mean), image_std=list(std))
    if config.num_channels != 3:
        raise ValueError(
            f"num_channels={config.num_channels} has no default image processor; allowed: 1 (grayscale) or 3 (RGB). "
            "Build and save your own image processor for other inputs."
        )
    mean, std = image_mean or CIFAR10_MEAN, image_std or CIFAR10_STD
    return ViTImageProcessorPil(size=size, image_mean=list(mean), image_std=list(std), do_convert_rgb=True)
