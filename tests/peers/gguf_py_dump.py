#!/usr/bin/env python3
"""Lists a GGUF file as the PyPI `gguf` package (llama.cpp's gguf-py) reads it.

Prints one JSON document on stdout: every metadata key in file order with its
type and value, every tensor's name, type, shape (GGUF order, ne[0] first),
absolute data offset and byte size, and gguf-py's ggml type table (id, block
size, bytes per block). ggviz's tests compare it with ggviz's own reader
(tests/peer_gguf_py.rs), and bench/inspect_vs_gguf_py.sh times it against
`ggviz inspect --json`.

With --summarize N, arrays longer than N are written as {"type", "len"},
exactly as `ggviz inspect --json` does, so both tools produce the same
fields. Non-finite floats are written as the strings "NaN", "inf", "-inf",
as ggviz spells them (JSON has no such numbers).
"""

import argparse
import json
import math
import sys

try:
    from gguf import GGUFReader, GGUFValueType
    from gguf.constants import GGML_QUANT_SIZES
except ImportError as err:  # the Rust test turns this into a failure
    sys.exit(f"the PyPI `gguf` package is missing ({err}); run scripts/setup.sh")


def plain(value):
    """A JSON-safe copy of a decoded value."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def type_name(t):
    return GGUFValueType(t).name.lower()


def metadata(reader, summarize):
    out = []
    for field in reader.fields.values():
        # gguf-py lists the header's version and counts as pseudo-fields.
        if field.name.startswith("GGUF."):
            continue
        entry = {"key": field.name, "type": type_name(field.types[0])}
        if field.types[0] == GGUFValueType.ARRAY:
            if len(field.types) > 2:
                sys.exit(f"{field.name}: nested arrays are flattened by gguf-py, cannot compare")
            # An empty array records no element type in gguf-py's field.
            elem = field.types[1] if len(field.types) > 1 else GGUFValueType(field.parts[0][0])
            entry["element_type"] = type_name(elem)
            n = len(field.data)
            if summarize is not None and n > summarize:
                entry["value"] = {"type": type_name(elem), "len": n}
            else:
                entry["value"] = plain(field.contents())
        else:
            entry["value"] = plain(field.contents())
        out.append(entry)
    return out


def tensors(reader):
    return [
        {
            "name": t.name,
            "type": t.tensor_type.name,
            "shape": [int(d) for d in t.shape],
            "offset": int(t.data_offset),
            "bytes": int(t.n_bytes),
        }
        for t in reader.tensors
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--summarize", type=int, metavar="N",
                    help="write arrays longer than N as {type, len}")
    args = ap.parse_args()
    reader = GGUFReader(args.file)
    doc = {
        "metadata": metadata(reader, args.summarize),
        "tensors": tensors(reader),
        "quant_sizes": {t.name: [int(t), *v] for t, v in GGML_QUANT_SIZES.items()},
    }
    json.dump(doc, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
