#!/usr/bin/env python3
"""Times `ggviz inspect --json` against the PyPI `gguf` reader, in one run.

Both list the same fields of the same file as JSON: every metadata key with
its value (arrays longer than 32 items as {"type", "len"}) and every tensor's
name, type, shape, offset and bytes. gguf-py's side is
tests/peers/gguf_py_dump.py --summarize 32; the script checks that both
outputs agree before it trusts the timings. Each tool runs as a fresh
process, as a user runs it, several times; medians are compared.

Then it shows that opening a file does not read its weights: it writes a
sparse GGUF file declaring 16 GiB of tensor data (no disk space used) and
reports ggviz's time, peak resident memory and page faults on it and on the
real model (reading 16 GiB through the memory map would fault over 250,000
times and hold gigabytes resident).

    bench/inspect_vs_gguf_py.py [MODEL] [--runs N]

MODEL defaults to the SmolLM2 test model; ggviz is built in release mode
first.
"""

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
GGVIZ = ROOT / "target/release/ggviz"
PEER = ROOT / "tests/peers/gguf_py_dump.py"
SUMMARIZE = 32  # ggviz::inspect::MAX_INLINE_ARRAY


def run(cmd):
    """Runs `cmd`; returns its wall time in seconds and its stdout."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{proc.stderr.decode(errors='replace')}")
    return elapsed, proc.stdout


def memory(cmd):
    """Peak resident memory (KiB) and page faults of one run of `cmd`, from
    /usr/bin/time (a C parent, so no Python pages are counted), or None."""
    if not Path("/usr/bin/time").exists():
        return None
    proc = subprocess.run(["/usr/bin/time", "-f", "%M %R %F", *map(str, cmd)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    rss, minor, major = proc.stderr.decode().split()[-3:]
    return int(rss), int(minor) + int(major)


def describe_memory(label, cmd):
    m = memory(cmd)
    if m is None:
        print(f"  {label}: /usr/bin/time is missing (Debian package `time`), not measured")
    else:
        print(f"  {label}: peak RSS {m[0] / 1024:.1f} MiB, {m[1]} page faults")


def same_fields(ggviz_doc, peer_doc):
    """Checks both tools listed the same tensors and metadata keys; returns
    how many of each."""
    fields = ("name", "type", "shape", "offset", "bytes")
    ours = [{f: t[f] for f in fields} for t in ggviz_doc["tensors"]]
    theirs = [{f: t[f] for f in fields} for t in peer_doc["tensors"]]
    if ours != theirs:
        sys.exit("the two tools list different tensors")
    if list(ggviz_doc["metadata"]) != [e["key"] for e in peer_doc["metadata"]]:
        sys.exit("the two tools list different metadata keys")
    return len(ours), len(ggviz_doc["metadata"])


def timings(label, cmd, runs):
    times = []
    out = None
    for _ in range(runs):
        t, out = run(cmd)
        times.append(t)
    med = statistics.median(times)
    print(f"  {label:<34} median {med * 1e3:9.1f} ms   min {min(times) * 1e3:9.1f} ms"
          f"   max {max(times) * 1e3:9.1f} ms   ({runs} runs)")
    return med, out


def sparse_model(path, gib):
    """Writes a GGUF v3 header declaring `gib` GiB of F16 tensors, then
    extends the file to its full size without writing the data."""
    def string(s):
        b = s.encode()
        return struct.pack("<Q", len(b)) + b

    rows, cols = 4096, 4096  # one F16 tensor: 32 MiB
    per_tensor = rows * cols * 2
    n = gib * (1 << 30) // per_tensor
    kv = string("general.architecture") + struct.pack("<I", 8) + string("llama")
    infos = b""
    for i in range(n):
        infos += string(f"blk.{i}.ffn_up.weight") + struct.pack("<I", 2)
        infos += struct.pack("<QQ", rows, cols) + struct.pack("<I", 1)
        infos += struct.pack("<Q", i * per_tensor)
    header = b"GGUF" + struct.pack("<IQQ", 3, n, 1) + kv + infos
    data_offset = -(-len(header) // 32) * 32
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(data_offset + n * per_tensor)
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=str(DEFAULT_MODEL))
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    model = Path(args.model)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)

    size = model.stat().st_size
    print(f"{model.name} ({size / 2**20:.1f} MiB), {os.cpu_count()} CPUs, "
          f"{args.runs} runs each\n")
    ggviz_cmd = [GGVIZ, "inspect", "--json", model]
    peer_cmd = [sys.executable, PEER, model, "--summarize", str(SUMMARIZE)]
    ours, ours_out = timings("ggviz inspect --json", ggviz_cmd, args.runs)
    theirs, peer_out = timings("gguf-py GGUFReader (PyPI gguf)", peer_cmd, args.runs)
    n_tensors, n_keys = same_fields(json.loads(ours_out), json.loads(peer_out))
    print(f"\n  same {n_tensors} tensors and {n_keys} metadata keys from both")
    print(f"  ggviz is {theirs / ours:.0f}x faster ({ours * 1e3:.1f} ms vs {theirs * 1e3:.0f} ms)")

    print("\nweights are not read (peak memory and page faults of one run):")
    describe_memory("ggviz --version (baseline)", [GGVIZ, "--version"])
    describe_memory(f"ggviz inspect --json {model.name}", ggviz_cmd)
    with tempfile.TemporaryDirectory() as tmp:
        sparse = Path(tmp) / "sparse-16GiB.gguf"
        n = sparse_model(sparse, 16)
        on_disk = sparse.stat().st_blocks * 512
        print(f"  sparse model: {n} F16 tensors, {sparse.stat().st_size / 2**30:.1f} GiB "
              f"declared, {on_disk / 2**10:.0f} KiB on disk")
        cmd = [GGVIZ, "inspect", "--json", sparse]
        timings("ggviz inspect --json (sparse)", cmd, args.runs)
        describe_memory("ggviz inspect --json (sparse)", cmd)

if __name__ == "__main__":
    main()
