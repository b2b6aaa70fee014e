"""Training and inference benchmark: every figure is a ratio of two things measured in this one run.

    python benchmarks/train_benchmark.py [--dataset_name ../shared/data/cifar10] [--output_dir benchmarks/results]

1. training img/s of the project's Trainer path (scripts/train.py) / a minimal hand-written PyTorch loop on the same
   model, batch, data, optimizer and settings (goal >= 0.95);
2. achieved training GFLOP/s of the `loopy` preset (3 x analytic forward FLOPs per image) / this machine's fp32
   matmul GFLOP/s measured here (goal >= 0.80), beside its ceiling: the GFLOP/s of the step's convolutions alone;
3. data path img/s (decoded once, batched tensor augmentation) / the per-sample PIL path of the transformers example
   on the same images (goal >= 20);
4. peak training memory of `loopy` at k = 25 / k = 5, with gradient checkpointing (goal <= 1.3) and without;
5. inference: single-image `pipeline` latency and batched img/s.

Writes `<output_dir>/train_benchmark_<device>.json` and `.md`. On a GPU it trains in bf16 with torch.compile.
"""

import argparse
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from transformers import TrainerCallback, pipeline
from transformers.utils import logging as transformers_logging

from loopy_hf import LoopyForImageClassification, count_flops, image_processor_for, load_preset, save_checkpoint
from loopy_hf.allocator import retain_freed_memory
from loopy_hf.augmentation import BatchTransform
from loopy_hf.data import DecodedImages, collate_batch, decode_images, load_train_validation
from loopy_hf.machine import describe_machine

REPO_ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    """scripts/<name>.py as a module (scripts/ stays off sys.path: its evaluate.py would shadow `evaluate`)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_script = load_script("train")
write_section = load_script("readme_sections").write_section

PRESET = "loopy"
BATCH_SIZE = 64          # images per optimizer step in both training paths
WARMUP_STEPS = 3         # steps excluded from timing (compilation, allocator warm-up)
TIMED_STEPS = 20         # steps timed per path and round
ROUNDS = 2               # paths alternate; each path's best round counts
LEARNING_RATE = 1e-3
MEMORY_BATCH_SIZE = 32


def device_settings() -> dict:
    gpu = torch.cuda.is_available()
    return {"device": "cuda" if gpu else "cpu", "bf16": gpu, "torch_compile": True, "channels_last": True}


def matmul_gflops(size: int = 2048, seconds: float = 3.0) -> float:
    """Sustained fp32 matmul throughput of this machine (the ceiling the training throughput is compared with)."""
    device = device_settings()["device"]
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * size**3 * count / (time.perf_counter() - start) / 1e9


class StepTimes(TrainerCallback):
    def __init__(self):
        self.times = []

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter())


def images_per_second(step_times: list[float]) -> float:
    timed = step_times[WARMUP_STEPS - 1:]
    return BATCH_SIZE * (len(timed) - 1) / (timed[-1] - timed[0])


def trainer_path(dataset_name: str, output_dir: Path, settings: dict) -> float:
    """scripts/train.py as users run it, minus evaluation and saving during training."""
    times = StepTimes()
    steps = WARMUP_STEPS + TIMED_STEPS
    argv = [
        "--config_name", PRESET, "--dataset_name", dataset_name, "--output_dir", str(output_dir),
        "--overwrite_output_dir", "true", "--max_train_samples", str(BATCH_SIZE * steps), "--max_eval_samples", "64",
        "--max_steps", str(steps), "--per_device_train_batch_size", str(BATCH_SIZE), "--learning_rate",
        str(LEARNING_RATE), "--optim", "adamw_torch", "--lr_scheduler_type", "constant", "--eval_strategy", "no",
        "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true", "--logging_strategy", "no",
        "--torch_compile", str(settings["torch_compile"]).lower(), "--bf16", str(settings["bf16"]).lower(),
        "--channels_last", str(settings["channels_last"]).lower(), "--augmentation", "crop_flip",
        "--dataloader_pin_memory", "false", "--use_cpu", str(settings["device"] == "cpu").lower(),
    ]
    train_script.main(argv, callbacks=(times,))
    return images_per_second(times.times)


def hand_written_path(pixels, labels, settings: dict) -> float:
    """The same model, batch, data, augmentation and optimizer in the shortest loop PyTorch allows."""
    device = settings["device"]
    config = load_preset(PRESET, problem_type="single_label_classification")
    processor = image_processor_for(config)
    transform = BatchTransform(processor.image_mean, processor.image_std, augment=True,
                               channels_last=settings["channels_last"])
    loader = torch.utils.data.DataLoader(DecodedImages(pixels, labels, transform), batch_size=BATCH_SIZE,
                                         shuffle=True, collate_fn=collate_batch, drop_last=True)
    model = LoopyForImageClassification(config).to(device).train()
    if settings["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    step = torch.compile(model) if settings["torch_compile"] else model
    times = []
    for batch in loader:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=settings["bf16"]):
            loss = step(batch["pixel_values"].to(device), labels=batch["labels"].to(device)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter())
    return images_per_second(times)


def convolution_ceiling(settings: dict, repeats: int = 5) -> float:
    """GFLOP/s of one `loopy` training step if it did nothing but its convolutions: every conv call of a forward
    pass (recorded by hooks, unrolls included) timed alone, forward and backward, on tensors of its real shape.
    No training step of this architecture can beat it, whatever the BatchNorm, ReLU and optimizer passes cost."""
    device = settings["device"]
    config = load_preset(PRESET)
    model = LoopyForImageClassification(config).to(device).train().to(memory_format=torch.channels_last)
    calls = Counter()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    hooks = [m.register_forward_hook(lambda module, args, output: calls.update([(module, args[0].shape)]))
             for m in convs]
    model(torch.zeros(BATCH_SIZE, config.num_channels, config.image_size, config.image_size, device=device))
    for hook in hooks:
        hook.remove()
    seconds = 0.0
    for (conv, shape), count in calls.items():
        inputs = torch.randn(shape, device=device).contiguous(memory_format=torch.channels_last).requires_grad_()
        grad = torch.randn_like(conv(inputs))
        times = []
        for _ in range(2 + repeats):
            started = time.perf_counter()
            with torch.autocast(device, dtype=torch.bfloat16, enabled=settings["bf16"]):
                output = conv(inputs)
            output.backward(grad)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - started)
        seconds += count * statistics.median(times[2:])
    return 3 * count_flops(config) * BATCH_SIZE / seconds / 1e9


def pil_per_sample_batch(images: list[Image.Image], processor, padding: int = 4) -> torch.Tensor:
    """The transformers example's style: augment each PIL image, run the processor per image, stack."""
    tensors = []
    for image in images:
        image = ImageOps.expand(image, border=padding)
        left, top = random.randint(0, 2 * padding), random.randint(0, 2 * padding)
        image = image.crop((left, top, left + 32, top + 32))
        if random.random() < 0.5:
            image = ImageOps.mirror(image)
        tensors.append(processor(image, return_tensors="pt")["pixel_values"][0])
    return torch.stack(tensors)


def data_path_ratio(split, image_column: str, label_column: str) -> dict:
    processor = image_processor_for(load_preset(PRESET))
    images = [row[image_column] for row in split]
    started = time.perf_counter()
    pixels, labels = decode_images(split, image_column, label_column, 3)
    decode_seconds = time.perf_counter() - started
    dataset = DecodedImages(pixels, labels, BatchTransform(processor.image_mean, processor.image_std, augment=True))
    batches = [list(range(i, min(i + 256, len(images)))) for i in range(0, len(images), 256)]

    def batched():
        for indices in batches:
            dataset.__getitems__(indices)

    def per_sample():
        for indices in batches:
            pil_per_sample_batch([images[i] for i in indices], processor)

    rates = {}
    for name, run in (("batched", batched), ("per_sample_pil", per_sample)):
        run()
        started = time.perf_counter()
        repeats = 5 if name == "batched" else 1
        for _ in range(repeats):
            run()
        rates[name] = repeats * len(images) / (time.perf_counter() - started)
    return {"batched_img_s": rates["batched"], "per_sample_pil_img_s": rates["per_sample_pil"],
            "ratio": rates["batched"] / rates["per_sample_pil"], "images": len(images),
            "decode_once_seconds": decode_seconds}


def resident_kib(field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process from /proc, in KiB."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith(f"{field}:")))


def memory_probe(num_unrolls: int, checkpointing: bool) -> int:
    """Peak resident memory added by one training step (bytes); run in a fresh process per setting (Linux)."""
    model = LoopyForImageClassification(load_preset(PRESET, num_unrolls=num_unrolls)).train()
    if checkpointing:
        model.gradient_checkpointing_enable()
    pixel_values = torch.randn(MEMORY_BATCH_SIZE, 3, 32, 32)
    labels = torch.randint(0, 10, (MEMORY_BATCH_SIZE,))
    # Reset the peak, so that memory used and freed while building the model is not mistaken for the step's peak.
    Path("/proc/self/clear_refs").write_text("5")
    before = resident_kib("VmRSS")
    model(pixel_values, labels=labels).loss.backward()
    return (resident_kib("VmHWM") - before) * 1024


def peak_memory(num_unrolls: int, checkpointing: bool) -> int:
    # A fixed mmap threshold makes glibc return freed large blocks at once, so the resident-set peak measures the
    # tensors alive together rather than heap fragmentation left by earlier unrolls' recomputation.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    result = subprocess.run(
        [sys.executable, __file__, "--memory_probe", str(num_unrolls), str(int(checkpointing))],
        capture_output=True, text=True, check=True, env=env,
    )
    return int(result.stdout.strip().splitlines()[-1])


def inference(folder: Path, images: list[Image.Image]) -> dict:
    classifier = pipeline("image-classification", model=str(folder))
    latencies = []
    for image in images[:5] + images[:30]:
        started = time.perf_counter()
        classifier(image)
        latencies.append(time.perf_counter() - started)
    model = classifier.model.eval()
    pixel_values = image_processor_for(model.config)(images[:256], return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        model(pixel_values)
        started = time.perf_counter()
        for _ in range(3):
            model(pixel_values)
    return {"pipeline_single_image_ms": 1000 * statistics.median(latencies[5:]),
            "batched_img_s": 3 * len(pixel_values) / (time.perf_counter() - started), "batch_size": len(pixel_values)}


def markdown(results: dict) -> str:
    r = results
    rows = [
        ("Trainer path / hand-written loop, training img/s", f"{r['trainer']['img_s']:.1f} / "
         f"{r['hand_written']['img_s']:.1f}", f"**{r['trainer_vs_hand_written']:.2f}**", ">= 0.95"),
        (f"`{PRESET}` training GFLOP/s / fp32 matmul GFLOP/s", f"{r['training_gflops']:.0f} / "
         f"{r['matmul_gflops']:.0f}", f"**{r['gflops_vs_matmul']:.2f}**", ">= 0.80"),
        (f"ceiling: `{PRESET}`'s convolutions alone (each conv call timed forward + backward) / fp32 matmul GFLOP/s",
         f"{r['convolutions_only']['gflops']:.0f} / {r['matmul_gflops']:.0f}",
         f"{r['convolutions_only']['vs_matmul']:.2f}", "(contrast)"),
        ("data path / per-sample PIL path, img/s", f"{r['data_path']['batched_img_s']:,.0f} / "
         f"{r['data_path']['per_sample_pil_img_s']:,.0f}", f"**{r['data_path']['ratio']:.0f}**", ">= 20"),
        ("peak memory k = 25 / k = 5, gradient checkpointing", f"{r['memory']['k25_gc'] / 2**20:.0f} / "
         f"{r['memory']['k5_gc'] / 2**20:.0f} MiB", f"**{r['memory']['ratio_gc']:.2f}**", "<= 1.3"),
        ("peak memory k = 25 / k = 5, no checkpointing", f"{r['memory']['k25'] / 2**20:.0f} / "
         f"{r['memory']['k5'] / 2**20:.0f} MiB", f"{r['memory']['ratio']:.2f}", "(contrast)"),
        *([("Trainer path, bf16 autocast / fp32 compiled, training img/s (CPU)",
            f"{r['trainer_bf16_cpu_img_s']:.1f} / {r['trainer']['img_s']:.1f}",
            f"{r['trainer_bf16_cpu_img_s'] / r['trainer']['img_s']:.2f}", "(contrast)")]
          if "trainer_bf16_cpu_img_s" in r else []),
        ("`pipeline` latency, one image", f"{r['inference']['pipeline_single_image_ms']:.1f} ms", "", ""),
        (f"batched inference, batch {r['inference']['batch_size']}", f"{r['inference']['batched_img_s']:,.0f} img/s",
         "", ""),
    ]
    lines = [f"Machine: {r['machine']}. Settings: {r['settings']}. Preset `{PRESET}`, batch {BATCH_SIZE}.", "",
             "| measure | measured | ratio | goal |", "|---|---|---:|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_name", default=str(REPO_ROOT.parent / "shared" / "data" / "cifar10"))
    parser.add_argument("--output_dir", default=str(REPO_ROOT / "benchmarks" / "results"))
    parser.add_argument("--write_readme", action="store_true", help="also put the table into README.md")
    parser.add_argument("--memory_probe", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        print(memory_probe(*args.memory_probe))
        return
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    # Both training paths run in this process with the allocator settings scripts/train.py uses on a CPU (the
    # memory probes run in their own processes with glibc's defaults).
    retain_freed_memory()
    settings = device_settings()
    results = {"machine": describe_machine(), "settings": settings, "preset": PRESET, "batch_size": BATCH_SIZE}

    splits, image_column, label_column, _ = load_train_validation(
        args.dataset_name, max_train_samples=BATCH_SIZE * (WARMUP_STEPS + TIMED_STEPS), max_eval_samples=2048
    )
    pixels, labels = decode_images(splits["train"], image_column, label_column, 3)

    print("memory ...", flush=True)
    memory = {f"k{k}{'_gc' if gc else ''}": peak_memory(k, gc) for k in (5, 25) for gc in (False, True)}
    memory.update(ratio=memory["k25"] / memory["k5"], ratio_gc=memory["k25_gc"] / memory["k5_gc"])
    results["memory"] = memory
    print("matmul, data path ...", flush=True)
    results["matmul_gflops"] = matmul_gflops()
    results["data_path"] = data_path_ratio(splits["validation"], image_column, label_column)

    print("training paths ...", flush=True)
    trainer_rates, hand_rates = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(ROUNDS):
            hand_rates.append(hand_written_path(pixels, labels, settings))
            trainer_rates.append(trainer_path(args.dataset_name, Path(scratch) / f"run{round_index}", settings))
            print(f"  round {round_index}: trainer {trainer_rates[-1]:.1f} img/s, hand {hand_rates[-1]:.1f} img/s")
        results["trainer"] = {"img_s": max(trainer_rates), "rounds": trainer_rates}
        results["hand_written"] = {"img_s": max(hand_rates), "rounds": hand_rates}
        results["trainer_vs_hand_written"] = max(trainer_rates) / max(hand_rates)
        results["training_gflops"] = 3 * count_flops(load_preset(PRESET)) * max(trainer_rates) / 1e9
        results["gflops_vs_matmul"] = results["training_gflops"] / results["matmul_gflops"]
        ceiling = convolution_ceiling(settings)
        results["convolutions_only"] = {"gflops": ceiling, "vs_matmul": ceiling / results["matmul_gflops"]}
        if settings["device"] == "cpu":
            # For contrast: bf16 autocast, which uses the AMX units of recent Xeons (eager: compile adds nothing).
            bf16 = {**settings, "bf16": True, "torch_compile": False}
            results["trainer_bf16_cpu_img_s"] = trainer_path(args.dataset_name, Path(scratch) / "bf16", bf16)

        print("inference ...", flush=True)
        folder = save_checkpoint(LoopyForImageClassification(load_preset(PRESET)), Path(scratch) / "inference")
        results["inference"] = inference(folder, [row[image_column] for row in splits["validation"]])

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = output_dir / f"train_benchmark_{settings['device']}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    if args.write_readme:
        write_section("benchmark", markdown(results))


if __name__ == "__main__":
    np.random.seed(0)
    random.seed(0)
    main()
