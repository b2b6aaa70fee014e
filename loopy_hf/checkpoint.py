"""Writing checkpoint folders whose files are complete or absent, never half-written."""

import os
import shutil
import tempfile
from pathlib import Path

from transformers import PreTrainedModel

from .preprocessing import image_processor_for


def save_checkpoint(model: PreTrainedModel, folder: str | Path, image_processor=None) -> Path:
    """Save `model` (safetensors, config with `auto_map`, code files) and its image processor into `folder`.

    Everything is first written to a temporary sibling folder; only when all files are complete are they moved
    into `folder` (each move is atomic), so an interrupted save leaves the previous files intact. Other files in
    `folder` (a training run's checkpoints, logs) are kept. Without `image_processor`, the one matching the
    model's config (`image_processor_for`) is saved, so `AutoImageProcessor` and `pipeline` work on the folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image_processor = image_processor or image_processor_for(model.config)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        model.save_pretrained(staging)
        image_processor.save_pretrained(staging)
        # Weights first, config last: a reader never sees a new config.json next to old weights.
        for path in sorted(staging.iterdir(), key=lambda p: p.name == "config.json"):
            os.replace(path, folder / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
