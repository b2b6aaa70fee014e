"""Writing a checkpoint folder that is complete or absent, never half-written."""

import shutil
import tempfile
from pathlib import Path

from transformers import PreTrainedModel

from .preprocessing import image_processor_for


def save_checkpoint(model: PreTrainedModel, folder: str | Path, image_processor=None) -> Path:
    """Save `model` (safetensors, config with `auto_map`, code files) and its image processor into `folder`.

    The files are written to a temporary sibling folder that replaces `folder` only once complete, so an
    interrupted save leaves the previous contents intact. Without `image_processor`, the one matching the
    model's config (`image_processor_for`) is saved, so `AutoImageProcessor` and `pipeline` work on the folder.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    image_processor = image_processor or image_processor_for(model.config)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        image_processor.save_pretrained(staging)
        _replace_folder(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def _replace_folder(new: Path, target: Path) -> None:
    """Move `new` into place; an existing `target` is renamed aside first and removed only after the swap."""
    if not target.exists():
        new.rename(target)
        return
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    target.rename(old)
    new.rename(target)
    shutil.rmtree(old)
