"""Named model presets. They are data: JSON files in `configs/models/`, shipped inside the package."""

import json
from importlib import resources

from .configuration_loopy import LoopyConfig


def _preset_files() -> dict:
    return {
        entry.name.removesuffix(".json"): entry
        for entry in (resources.files("loopy_hf") / "preset_configs").iterdir()
        if entry.name.endswith(".json")
    }


def list_presets() -> list[str]:
    """Names of every preset, e.g. `["deep", "loopy", ...]`."""
    return sorted(_preset_files())


def load_preset(name: str, **overrides) -> LoopyConfig:
    """The `LoopyConfig` of preset `name`, with any field overridden (e.g. `load_preset("loopy", num_unrolls=3)`)."""
    files = _preset_files()
    if name not in files:
        raise ValueError(f"preset={name!r} is unknown; allowed: {', '.join(sorted(files))}")
    config_dict = json.loads(files[name].read_text())
    return LoopyConfig.from_dict({**config_dict, **overrides})
