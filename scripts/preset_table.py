"""Writes the README's table of model presets (parameters, GFLOPs per image) from configs/models/.

    python scripts/preset_table.py            # print the table
    python scripts/preset_table.py --write    # replace the table in README.md
    python scripts/preset_table.py --check    # exit 1 if README.md's table is out of date
"""

import argparse
import sys

from readme_sections import README, with_section

from loopy_hf import count_flops, count_parameters, list_presets, load_preset

SECTION = "preset-table"


def channels(sizes: list[int]) -> str:
    """`[64, 64, 64, 3]` as `64 x 3, 3`: runs of equal widths folded."""
    runs = []
    for size in sizes:
        if runs and runs[-1][0] == size:
            runs[-1][1] += 1
        else:
            runs.append([size, 1])
    return ", ".join(f"{size} x {count}" if count > 1 else str(size) for size, count in runs)


def describe(config) -> str:
    start, end = config.loop_span
    if config.num_unrolls == 1:
        return "no loop (k = 1)"
    sign = "+" if config.composition == "add" else "x"
    path = f" via loop layers {config.loop_hidden_sizes}" if config.loop_hidden_sizes else ""
    tied = "" if config.share_conv_weights else ", untied weights"
    return f"{sign} loop conv {end + 1} -> conv {start + 1}{path}, k = {config.num_unrolls}{tied}"


def preset_table() -> str:
    rows = [
        "| preset | conv channels | loop | input | parameters | with BN statistics | GFLOPs / image |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for name in list_presets():
        config = load_preset(name)
        size = f"{config.num_channels}x{config.image_size}x{config.image_size}"
        rows.append(
            f"| `{name}` | {channels(config.hidden_sizes)} | {describe(config)} | {size} | {count_parameters(config):,} "
            f"| {count_parameters(config, include_batch_norm_statistics=True):,} | {count_flops(config) / 1e9:.4f} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="replace the table in README.md")
    mode.add_argument("--check", action="store_true", help="fail if README.md's table is out of date")
    args = parser.parse_args()

    table = preset_table()
    if not (args.write or args.check):
        print(table)
        return 0
    readme = README.read_text()
    updated = with_section(readme, SECTION, table)
    if args.check:
        if updated != readme:
            print("README.md's preset table is out of date: run python scripts/preset_table.py --write")
            return 1
        return 0
    README.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
