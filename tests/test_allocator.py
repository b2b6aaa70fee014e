"""retain_freed_memory: a freed activation-sized block stays in the process for the next step to reuse."""

import subprocess
import sys

import pytest

PROBE = """
import sys
import torch
from loopy_hf.allocator import retain_freed_memory

def resident_mib():
    status = open("/proc/self/status").read()
    return int(next(l.split()[1] for l in status.splitlines() if l.startswith("VmRSS:"))) / 1024

if sys.argv[1] == "retain":
    assert retain_freed_memory()
block = torch.ones(16 * 2**20 // 4)  # 16 MiB, the size of one activation of `loopy` at batch 64
held = resident_mib()
del block
print(held - resident_mib())
"""


def freed_mib(mode: str) -> float:
    result = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return float(result.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_freed_block_stays_in_the_process_only_when_retained():
    assert freed_mib("default") > 12  # glibc unmaps the block at once
    assert freed_mib("retain") < 1
