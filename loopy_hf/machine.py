"""A one-line description of the machine a number was measured on (for results files and model cards)."""

import os
import platform
from pathlib import Path

import torch
import transformers


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe_machine() -> str:
    """E.g. `Intel(R) Xeon(R) Processor (2 cores, AMX bf16), no GPU, torch 2.13.0+cpu, transformers 5.25.0`."""
    amx = "amx_bf16" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else False
    cpu = f"{cpu_name()} ({os.cpu_count()} cores{', AMX bf16' if amx else ''})"
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {gpu}, torch {torch.__version__}, transformers {transformers.__version__}"
