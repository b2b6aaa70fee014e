"""Loopy Neural Networks for Hugging Face transformers.

Importing the package registers `LoopyConfig` and the models with the Auto classes, and marks them for
`save_pretrained` to write `auto_map` plus the code files (so checkpoints also load with `trust_remote_code`).
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification

from .checkpoint import save_checkpoint
from .configuration_loopy import LoopyConfig
from .image_processing_loopy import LoopyImageProcessor
from .model_stats import count_flops, count_parameters
from .modeling_loopy import LoopyForImageClassification, LoopyModel, LoopyPreTrainedModel
from .preprocessing import image_processor_for
from .presets import list_presets, load_preset

AutoConfig.register("loopy", LoopyConfig)
AutoModel.register(LoopyConfig, LoopyModel)
AutoModelForImageClassification.register(LoopyConfig, LoopyForImageClassification)
AutoImageProcessor.register(LoopyConfig, slow_image_processor_class=LoopyImageProcessor)

LoopyConfig.register_for_auto_class()
LoopyModel.register_for_auto_class("AutoModel")
LoopyForImageClassification.register_for_auto_class("AutoModelForImageClassification")
LoopyImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = [
    "LoopyConfig",
    "LoopyModel",
    "LoopyForImageClassification",
    "LoopyPreTrainedModel",
    "LoopyImageProcessor",
    "image_processor_for",
    "load_preset",
    "list_presets",
    "save_checkpoint",
    "count_flops",
    "count_parameters",
]
__version__ = "0.1.0"
