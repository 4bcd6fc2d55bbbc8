"""What the benchmarks here share: CPU time and memory of a process tree from /proc, the CPU's
model, free loopback ports and the version of a tool, so every harness measures the same way."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "CLK_TCK",
    "cpu_model",
    "free_port",
    "process_tree",
    "read_stat",
    "tool_version",
    "tree_cpu_seconds",
    "tree_rss_kib",
]

CLK_TCK = os.sysconf("SC_CLK_TCK")


def read_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3 onwards), or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants (by parent PID), root first."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = read_stat(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    if read_stat(root) is None:
        return []
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_cpu_seconds(root: int) -> float:
    """utime + stime of every live process in the tree (all its threads), plus cutime + cstime.

    /proc/PID/stat of a process counts all its threads. Adding cutime/cstime keeps the CPU of
    descendants that exited and were reaped inside the tree during a run.
    """
    ticks = 0
    for pid in process_tree(root):
        fields = read_stat(pid)
        if fields is not None:
            ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / CLK_TCK


def tree_rss_kib(root: int) -> int:
    """Sum of VmRSS over the process tree, in KiB (shared pages count once per process)."""
    total = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
    return total


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("" when it says none)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return ""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def tool_version(argv: Sequence[str]) -> str:
    """The first line a tool prints about itself, "?" when it cannot run."""
    try:
        result = subprocess.run(list(argv), capture_output=True, timeout=10, check=False)
    except OSError:
        return "?"
    text = (result.stdout + result.stderr).decode(errors="replace").strip()
    return text.splitlines()[0] if text else "?"
