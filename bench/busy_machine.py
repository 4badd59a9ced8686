#!/usr/bin/env python3
"""The capture pass on a busy machine, as ratios in one run.

`ggviz run` on the demo model with a 14-token prompt; the figure is the
capture pass (`timing.decode_ms` of `--json`: llama_decode with the eval
callback). Four settings, each quiet and with two CPU-bound processes
beside it (`--hogs`, default 2: as many as this VM has cores):

  before   OMP_WAIT_POLICY=active: OpenMP's threads spin while they wait
           (libgomp's default for a process with fewer threads than cores)
  after    what ggviz does by default: its worker runs llama.cpp with
           OMP_WAIT_POLICY=passive unless the user set the variable

Target (issue 12): loaded ≤ 4 × quiet, and quiet not worse than before.
Run on a quiet machine (check `uptime`); `make bench` runs it.
"""
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.environ.get(
    "GGVIZ_TEST_MODEL",
    os.path.join(ROOT, ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
)
EXE = os.path.join(ROOT, "target/release/ggviz")
PROMPT = "The capital of France is Paris, and the capital of Italy is"
RUNS = int(os.environ.get("GGVIZ_BENCH_RUNS", "7"))
HOGS = int(os.environ.get("GGVIZ_BENCH_HOGS", "2"))


def capture_ms(env_extra):
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env.update(env_extra)
    out = subprocess.run(
        [EXE, "run", MODEL, "--prompt", PROMPT, "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    report = json.loads(out.stdout)
    return report["timing"]["decode_ms"], len(report["tokens"])


def median_of(env_extra):
    values = []
    tokens = 0
    for _ in range(RUNS):
        ms, tokens = capture_ms(env_extra)
        values.append(ms)
    return statistics.median(values), min(values), max(values), tokens


def hogs(n):
    return [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(n)
    ]


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    with open("/proc/loadavg") as f:
        print(f"load average before: {f.read().split()[0]}")
    settings = [
        ("before (OMP_WAIT_POLICY=active)", {"OMP_WAIT_POLICY": "active"}),
        ("after (ggviz's default)", {}),
    ]
    results = {}
    for label, env in settings:
        quiet = median_of(env)
        procs = hogs(HOGS)
        time.sleep(0.5)
        try:
            loaded = median_of(env)
        finally:
            for p in procs:
                p.kill()
                p.wait()
        results[label] = (quiet, loaded)
        print(
            f"{label:34s} quiet {quiet[0]:7.1f} ms (min {quiet[1]:.1f}, max {quiet[2]:.1f}), "
            f"{HOGS} busy processes {loaded[0]:7.1f} ms (min {loaded[1]:.1f}, max {loaded[2]:.1f}): "
            f"{loaded[0] / quiet[0]:.1f}x its quiet time ({quiet[3]} tokens, medians of {RUNS})"
        )
    (bq, bl), (aq, al) = results.values()
    print(
        f"loaded, after vs before: {bl[0] / al[0]:.1f}x faster; "
        f"quiet, after / before: {aq[0] / bq[0]:.2f}"
    )


if __name__ == "__main__":
    main()
