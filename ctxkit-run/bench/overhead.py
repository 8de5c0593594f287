#!/usr/bin/env python3
"""Per-job overhead of ctxrun beside GNU parallel and rust-parallel, on the same inputs.

    python3 ctxkit-run/bench/overhead.py [--rounds R] [--quick]

Builds ctxrun in release mode, then runs each runner that is installed (`parallel` from
Debian's package, `rust-parallel` installed with cargo; a missing one is skipped and said so)
on the same jobs, fed one argument per line on stdin, with `-j 2`:

  true      10,000 jobs `true N`
  sleep     1,000 jobs `sleep 0.01`
  memory    `true N` at 1,000, 10,000 and 100,000 jobs (peak RSS)

Figures, medians over R rounds (default 3) run back to back in one process (GNU parallel,
ten times slower per job, runs one round, and the memory row only up to 10,000 jobs):

  wall/job      the wall time divided by the jobs
  overhead/job  (wall - floor) * j / jobs: what each job slot loses per job to the runner,
                above the floor: the same jobs under `xargs -P 2 -n 1`, which only forks,
                execs and waits for each job (its own row reads 0)
  cpu/job       user + system time of the runner and its jobs, divided by the jobs
  peak RSS      the largest resident set of the runner or any one job (GNU time's %M)

Each runner starts its jobs the way it does by default: GNU parallel through `sh -c`; ctxrun
through `sh -c` unless the line needs no shell (`sleep 0.01` is exec'd directly, `true` is
dash's builtin and goes through `sh`); rust-parallel and xargs without a shell.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

TIME = "/usr/bin/time"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def runners():
    ctxrun = os.path.join(ROOT, "target", "release", "ctxrun")
    found = [("xargs (floor)", [shutil.which("xargs"), "-P", "2", "-n", "1"]),
             ("ctxrun", [ctxrun, "-j", "2"])]
    parallel = shutil.which("parallel")
    if parallel:
        found.append(("gnu-parallel", [parallel, "-j", "2"]))
    else:
        print("# GNU parallel not found (Debian: apt-get install -y parallel): skipped", file=sys.stderr)
    rust_parallel = shutil.which("rust-parallel") or os.path.expanduser("~/.cargo/bin/rust-parallel")
    if os.path.exists(rust_parallel):
        found.append(("rust-parallel", [rust_parallel, "-j", "2"]))
    else:
        print("# rust-parallel not found (cargo install rust-parallel): skipped", file=sys.stderr)
    return found


def measure(argv, lines):
    """Runs argv under GNU time with `lines` on stdin; returns (wall s, cpu s, peak RSS KiB)."""
    data = "".join(line + "\n" for line in lines).encode()
    report = os.path.join("/tmp", f"ctxrun-overhead-{os.getpid()}")
    start = time.monotonic()
    done = subprocess.run([TIME, "-f", "%U %S %M", "-o", report] + argv, input=data,
                          stdout=subprocess.DEVNULL)
    wall = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed with status {done.returncode}")
    with open(report) as f:
        user, system, rss = f.read().split()[-3:]
    os.remove(report)
    return wall, float(user) + float(system), int(rss)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a tenth of the jobs, one round")
    args = parser.parse_args()
    if not os.path.exists(TIME):
        raise SystemExit("needs GNU time at /usr/bin/time (Debian: apt-get install -y time)")
    scale = 10 if args.quick else 1
    rounds = 1 if args.quick else args.rounds
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "ctxkit-run"], cwd=ROOT, check=True)
    found = runners()
    work = [
        ("true", ["true"], [str(i) for i in range(10_000 // scale)]),
        ("sleep", ["sleep"], ["0.01"] * (1_000 // scale)),
    ]
    print(f"{'workload':<8} {'runner':<14} {'jobs':>7} {'wall/job':>10} {'overhead/job':>13} {'cpu/job':>10} {'peak RSS':>10}")
    for name, command, lines in work:
        results = {label: [] for label, _ in found}
        for round_no in range(rounds):
            for label, argv in found:
                if label == "gnu-parallel" and round_no > 0:
                    continue
                results[label].append(measure(argv + command, lines))
        floor = statistics.median(r[0] for r in results["xargs (floor)"])
        for label, _ in found:
            wall = statistics.median(r[0] for r in results[label])
            cpu = statistics.median(r[1] for r in results[label])
            rss = max(r[2] for r in results[label])
            n = len(lines)
            overhead = (wall - floor) * 2 / n
            print(f"{name:<8} {label:<14} {n:>7} {wall / n * 1e6:>8.0f}µs {overhead * 1e6:>11.0f}µs "
                  f"{cpu / n * 1e6:>8.0f}µs {rss:>7} KiB")
    print()
    print(f"{'memory':<8} {'runner':<14} " + " ".join(f"{n:>12}" for n in (1_000, 10_000, 100_000)))
    for label, argv in found[1:]:
        peaks = []
        for n in (1_000 // scale, 10_000 // scale, 100_000 // scale):
            if label == "gnu-parallel" and n > 10_000 // scale:
                peaks.append(None)
                continue
            peaks.append(measure(argv + ["true"], [str(i) for i in range(n)])[2])
        print(f"{'true':<8} {label:<14} " + " ".join(f"{p:>8} KiB" if p else f"{'-':>12}" for p in peaks))


if __name__ == "__main__":
    main()
