#!/usr/bin/env python3
"""Instructions per call of the sandbox's steps, counted by callgrind: for differences the
clock on these VMs cannot resolve (its rows move by more than 2% between runs of one build;
these counts moved by 0.9% at most between runs of one build).

    cargo bench --no-run --bench overhead        # prints the bench binary's path
    python3 scripts/count-instructions.py BEFORE_BINARY [AFTER_BINARY ...]

Each binary runs `OVERHEAD_ONLY_FIXED=1` (the fixed-hits table) under
`valgrind --tool=callgrind`, a few minutes each, in parallel. The table prints, per step and
binary, the step's inclusive instructions divided by its calls. The figures count instructions,
not cycles: a cache miss or a system call's kernel time is not in them. Under valgrind the
instance pool cannot be reserved, so every instance is allocated on demand: the instantiation
and drop rows are on-demand figures, not the pooled allocator's.
"""
import collections
import os
import re
import subprocess
import sys
import tempfile

# The steps, as the names callgrind gives their functions.
STEPS = [
    ("a search call on an instance (backend included)", "vector_service_runtime::service::Instance::search"),
    ("... the fixed-hits backend inside it", "<overhead::FixedHits as vector_service_runtime::backends::Retriever>::search"),
    ("instantiation (store + instance)", "vector_service_runtime::service::VectorService::instance"),
    ("instance drop (slot reset included)", "core::ptr::drop_in_place<vector_service_runtime::service::Instance>"),
]
CALLED = re.compile(r"\((\d+)\)(?: (.*))?")


def count(binary, out):
    """Run the fixed-hits table of `binary` under callgrind, writing its counts to `out`."""
    environment = dict(os.environ, OVERHEAD_ONLY_FIXED="1")
    return subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--smc-check=all-non-file",
         f"--callgrind-out-file={out}", binary],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def per_call(path):
    """Inclusive instructions per call of every called function in a callgrind output file:
    the sum of the costs on its `calls=` lines over the sum of their counts."""
    names, calls, cost = {}, collections.Counter(), collections.Counter()
    callee, pending = None, None
    for line in open(path, errors="replace"):
        if line.startswith("fn="):
            number, name = CALLED.match(line[3:].strip()).groups()
            if name:
                names[number] = name
        elif line.startswith("cfn="):
            number, name = CALLED.match(line[4:].strip()).groups()
            if name:
                names[number] = name
            callee = number
        elif line.startswith("calls="):
            pending = int(line[6:].split()[0])
        elif pending is not None:
            fields = line.split()
            calls[callee] += pending
            cost[callee] += int(fields[1]) if len(fields) > 1 else 0
            pending = None
    return {names[k]: (calls[k], cost[k] / calls[k]) for k in calls if calls[k] and k in names}


def main():
    binaries = sys.argv[1:]
    if not binaries:
        sys.exit(__doc__)
    with tempfile.TemporaryDirectory() as scratch:
        outs = [os.path.join(scratch, f"callgrind.{i}") for i in range(len(binaries))]
        runs = [count(binary, out) for binary, out in zip(binaries, outs)]
        for binary, run in zip(binaries, runs):
            if run.wait() != 0:
                sys.exit(f"callgrind of {binary} failed (exit {run.returncode})")
        counted = [per_call(out) for out in outs]
    print("| instructions per call | " + " | ".join(os.path.basename(b) for b in binaries) + " |")
    print("|---|" + "---:|" * len(binaries))
    for label, function in STEPS:
        cells = []
        for table in counted:
            found = table.get(function)
            cells.append(f"{found[1]:,.0f} ({found[0]:,} calls)" if found else "-")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
