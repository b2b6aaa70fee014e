"""`LoopyImageProcessor`: ViT-style preprocessing that can also turn any image into one grayscale channel.

transformers ships no image processor that outputs a single channel (and `pipeline` converts every image to
RGB first), so 1-channel models such as the MNIST presets need this small subclass. RGB models use the
built-in `ViTImageProcessor`. This file is copied next to 1-channel checkpoints (``trust_remote_code``).
"""

import numpy as np
from PIL import Image
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import PILImageResampling
from transformers.processing_utils import ImagesKwargs

# ITU-R 601-2 luma, the weights PIL's `convert("L")` uses.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class LoopyImageProcessorKwargs(ImagesKwargs, total=False):
    r"""
    do_convert_grayscale (`bool`, *optional*, defaults to `self.do_convert_grayscale`):
        Convert every image (RGB, RGBA, grayscale) to one luma channel before resizing.
    """

    do_convert_grayscale: bool


class LoopyImageProcessor(PilBackend):
    """Resize -> rescale -> normalize (as `ViTImageProcessor`), optionally to a single grayscale channel."""

    valid_kwargs = LoopyImageProcessorKwargs
    resample = PILImageResampling.BILINEAR
    size = {"height": 28, "width": 28}
    image_mean = [0.1307]
    image_std = [0.3081]
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_grayscale = True

    def process_image(self, image, do_convert_rgb=None, input_data_format=None, **kwargs) -> np.ndarray:
        do_convert_grayscale = kwargs.pop("do_convert_grayscale", self.do_convert_grayscale)
        if not do_convert_grayscale:
            return super().process_image(image, do_convert_rgb, input_data_format, **kwargs)
        if isinstance(image, Image.Image):
            return super().process_image(image.convert("L"), False, input_data_format, **kwargs)
        image = super().process_image(image, True, input_data_format, **kwargs)  # (3, H, W) after RGB conversion
        luma = np.tensordot(LUMA_WEIGHTS, image[:3].astype(np.float32), axes=1)
        return np.round(luma)[None].astype(image.dtype) if image.dtype == np.uint8 else luma[None]


__all__ = ["LoopyImageProcessor"]
