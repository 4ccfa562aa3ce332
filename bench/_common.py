"""Shared by every benchmark: timing, machine description, and rewriting a section of docs/BENCHMARKS.md.

A section of BENCHMARKS.md is the text between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``;
``write_section`` replaces it (or appends it), so each script owns its tables and reruns keep the rest.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "docs" / "BENCHMARKS.md"


def default_camvid() -> Path:
    """CamVid for the benchmarks: $SEGKIT_CAMVID, else data/camvid (where the configs look), else ../shared/data/camvid."""
    if os.environ.get("SEGKIT_CAMVID"):
        return Path(os.environ["SEGKIT_CAMVID"])
    local = ROOT / "data" / "camvid"
    return local if local.is_dir() else ROOT.parent / "shared" / "data" / "camvid"


def sync(device: torch.device | str | None = None) -> None:
    if torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda"):
        torch.cuda.synchronize()


def measure(fn: Callable[[], object], warmup: int = 2, repeats: int = 5, device=None) -> Dict[str, float]:
    """Median, min and max seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    sync(device)
    times: List[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "repeats": repeats}


def interleave(fns: Dict[str, Callable[[], object]], rounds: int, steps: int, device=None) -> Dict[str, List[float]]:
    """{name: [median seconds of ``fn()`` in each round]}; the functions take turns, ``steps`` calls each per
    round, in reverse order every other round (A B, B A, ...), so drift in the machine's load hits all alike."""
    names = list(fns)
    per_round: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            times = []
            for _ in range(steps):
                t0 = time.perf_counter()
                fns[name]()
                sync(device)
                times.append(time.perf_counter() - t0)
            per_round[name].append(statistics.median(times))
    return per_round


def ratio_spread(slow: List[float], fast: List[float]) -> Dict[str, float]:
    """Median, min and max over rounds of slow[i] / fast[i] (a speed ratio when the lists are times)."""
    ratios = [s / f for s, f in zip(slow, fast)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "rounds": len(ratios)}


def load_average() -> str:
    return f"load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "load average unknown"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> str:
    """The CPU features the fast paths hang on, and what train.amp=auto picks here."""
    try:
        flags = set(
            next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
            .split(":", 1)[1]
            .split()
        )
    except (OSError, StopIteration):
        flags = set()
    named = [
        n
        for n, f in (("AVX-512", "avx512f"), ("AVX512-BF16", "avx512_bf16"), ("AMX-BF16", "amx_bf16"), ("AVX2", "avx2"))
        if f in flags
    ]
    if all(os.environ.get(k) == v for k, v in AVX2_ONLY.items()):
        named = [n for n in named if n == "AVX2"]  # what the emulated CPU has (see emulation())
    from segkit.runtime import amp_dtype

    auto = amp_dtype("auto", torch.device("cpu"))
    return (
        f"CPU flags: {', '.join(named) or 'none of AVX2/AVX-512/AMX'}; train.amp=auto on this CPU: "
        f"{'bf16' if auto is not None else 'fp32 (no native bf16)'}"
    )


# A CPU without AVX-512 (so without native bf16), emulated on one that has it: oneDNN (convolutions, and
# what torch.ops.mkldnn._is_mkldnn_bf16_supported() asks) and ATen's own kernels both stop at AVX2, so
# train.amp=auto picks fp32 and bf16 would be emulated, as on such a machine.
AVX2_ONLY = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def emulate_avx2_only() -> None:
    """Re-run this script under AVX2_ONLY unless it already runs so (the settings are read once, when torch starts;
    the bench workers inherit them)."""
    import sys

    if all(os.environ.get(k) == v for k, v in AVX2_ONLY.items()):
        return
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **AVX2_ONLY})


def emulation() -> str:
    """What the machine line says when AVX2_ONLY is in force ('' when not)."""
    if not all(os.environ.get(k) == v for k, v in AVX2_ONLY.items()):
        return ""
    return (
        "; emulating a CPU without AVX-512: "
        + " ".join(f"{k}={v}" for k, v in AVX2_ONLY.items())
        + f" (ATen kernels: {torch.backends.cpu.get_cpu_capability()})"
    )


def machine() -> str:
    """One line: CPU (or GPU), CPU flags, cores, torch version, date."""
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    if (
        git
        and subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "segkit", "bench", "configs"], cwd=ROOT).returncode
    ):
        git += " with uncommitted changes"  # the numbers are not that commit's
    return (
        f"{cpu_name()}, {os.cpu_count()} cores, {dev}; {cpu_flags()}{emulation()}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; segkit {git or '?'}; {datetime.date.today().isoformat()}"
    )


def markdown_table(header: List[str], rows: List[List[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    if os.environ.get("SEGKIT_BENCH_NO_WRITE") and path == BENCHMARKS_MD:
        return  # `make bench-quick`: smoke runs leave the published tables alone
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def run_worker(spec: Dict[str, object], timeout: float = 900) -> Dict[str, object]:
    """Run ``bench/_worker.py`` with ``spec`` in a fresh process and return its JSON result. A worker that
    compiles gets an empty inductor cache of its own, so its compile time is a real compile (not a cache hit
    of an earlier run) and an emulated CPU never picks up kernels built for the real one (a kernel compiled
    for AVX-512 crashed with a general protection fault under AVX2_ONLY: inductor's cache does not key on
    ATEN_CPU_CAPABILITY in torch 2.14.1)."""
    import json
    import sys

    with tempfile.TemporaryDirectory(prefix="segkit-bench-inductor-") as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache} if spec.get("compile") else None
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("_worker.py")), json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker failed for {spec}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
