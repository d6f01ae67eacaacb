"""Sampling profiles of a hoststate process with py-spy, summarised as text."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

# Where a sample's time goes: the first matching frame from the top of the stack decides.
CATEGORIES = (
    ("json (de)serialisation", ("json/", "json.py", "decoder.py", "encoder.py")),
    ("kopf event processing", ("kopf/",)),
    ("aiohttp client I/O", ("aiohttp/", "yarl/", "multidict/")),
    ("ssl", ("ssl.py",)),
    ("hoststate", ("hoststate/",)),
    ("asyncio loop", ("asyncio/",)),
)


class Profiler:
    def __init__(self, pid: int, output: Path, rate: int = 200) -> None:
        self.output = output
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--rate",
                str(rate),
                "--output",
                str(output),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def stop(self) -> dict[str, float]:
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=60)
        if not self.output.exists():
            raise RuntimeError(f"py-spy wrote no profile: {err.decode(errors='replace')[-500:]}")
        return summarise(self.output)


def summarise(path: Path) -> dict[str, float]:
    """Share of samples by category (innermost frame first), plus the busiest leaf functions."""
    by_category: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue  # not a sample line
        count = int(count_text)
        total += count
        frames = stack.split(";")
        leaves[frames[-1]] += count
        if any("select" in f or "epoll" in f or "_run_once" in f and f == frames[-1] for f in frames[-1:]):
            by_category["idle (waiting for I/O)"] += count
            continue
        for frame in reversed(frames):
            category = next((name for name, needles in CATEGORIES if any(n in frame for n in needles)), None)
            if category:
                by_category[category] += count
                break
        else:
            by_category["other"] += count
    summary = {name: round(100 * count / total, 1) for name, count in by_category.most_common()}
    summary["top_leaves"] = {leaf: round(100 * count / total, 1) for leaf, count in leaves.most_common(12)}
    summary["samples"] = total
    return summary
