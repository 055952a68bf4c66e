"""The parent side of the fuzzers (``fuzz_netx.py``, ``fuzz_nir.py``): mutants run in child processes, one JSON
line per mutant start and outcome; a child that dies mid-mutant (a signal, or the alarm of a hang) is restarted
after that mutant. Prints the failures, a summary per outcome and mutation class, and the JSON summary last."""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List


def drive(script: str, args, classify: Callable[[str], str], prepare: Callable[[Path], object] = lambda d: None,
          class_width: int = 12) -> int:
    """Run ``script --child`` over mutants ``0 .. args.mutants`` (``prepare(scratch)`` first); 1 on any failure."""
    counts: dict = {}
    classes: dict = {}
    failures: List[str] = []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        prepare(Path(d))
        first = 0
        while first < args.mutants:
            cmd = [sys.executable, script, "--child", "--scratch", d, "--first", str(first), "--mutants",
                   str(args.mutants), "--seed", str(args.seed), "--timeout", str(args.timeout), "--memory-gib",
                   str(args.memory_gib)]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            current = None
            assert proc.stdout is not None
            for line in proc.stdout:
                msg = json.loads(line)
                if "start" in msg:
                    current = msg
                    continue
                key = msg["outcome"].split(" ")[0]
                counts[key] = counts.get(key, 0) + 1
                cls = classify(current["start"]) if current else "?"
                classes.setdefault(cls, {}).setdefault(key, 0)
                classes[cls][key] += 1
                if key not in ("refused", "ran"):
                    failures.append(f"mutant {msg['i']} ({current['start'] if current else '?'}): {msg['outcome']}")
                first = msg["i"] + 1
            proc.wait()
            if proc.returncode != 0 and current is not None and first <= current["i"]:
                key = "hang" if proc.returncode == -signal.SIGALRM else "signal"
                counts[key] = counts.get(key, 0) + 1
                failures.append(f"mutant {current['i']} ({current['start']}): {key} (exit {proc.returncode})")
                first = current["i"] + 1
            elif proc.returncode != 0:
                failures.append(f"the fuzz child failed before any mutant (exit {proc.returncode})")
                break
    for f in failures:
        print(f)
    print(f"{args.mutants} mutants (seed {args.seed}): " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
          + f"; {len(failures)} failures, {time.time() - t0:.0f} s")
    for cls, c in sorted(classes.items()):
        print(f"  {cls:<{class_width}s} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    print(json.dumps({"counts": counts, "classes": classes, "failures": len(failures)}))
    return 1 if failures else 0


def arguments(doc: str, mutants: int, argv=None) -> argparse.Namespace:
    """The fuzzers' command line (the hidden ones drive a child)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mutants", type=int, default=mutants)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=int, default=20, help="seconds per mutant")
    ap.add_argument("--memory-gib", type=float, default=4.0, help="address-space limit of the child")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--scratch", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def report(i: int, timeout: int, check: Callable[[], str]) -> None:
    """Run one mutant's ``check`` under the alarm (its default action ends the child: the parent reports a hang)
    and print its outcome line."""
    signal.alarm(timeout)
    try:
        outcome = check()
    except MemoryError:
        outcome = "memory"
    except Exception as e:
        outcome = f"error {type(e).__name__}: {str(e)[:300]}"
    signal.alarm(0)
    print(json.dumps({"i": i, "outcome": outcome}), flush=True)


def limit_child(args: argparse.Namespace) -> None:
    """The child's address-space limit (``--memory-gib``), and sj2lava imported before the first alarm runs."""
    import resource

    if args.memory_gib:
        limit = int(args.memory_gib * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import sj2lava  # noqa: F401


def main(script: str, doc: str, mutants: int, child: Callable[[argparse.Namespace], int],
         classify: Callable[[str], str], prepare: Callable[[Path], object] = lambda d: None, class_width: int = 12,
         argv=None) -> int:
    """A fuzzer's entry point: the child's run of mutants under ``--child``, else the driver over children."""
    args = arguments(doc, mutants, argv)
    if args.child:
        return child(args)
    return drive(script, args, classify, prepare, class_width)
