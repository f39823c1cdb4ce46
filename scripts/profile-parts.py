#!/usr/bin/env python3
"""Sort the samples of a server profile into the parts BENCHMARKS.md names.

    perf record -F 499 --call-graph dwarf,16384 -p <server pid> -- sleep 5
    perf script > stacks.txt && python3 scripts/profile-parts.py stacks.txt

Guest code (JIT frames, `perf-PID.map`) counts as the guest call.

Each sample goes to the first part, from the innermost frame outwards, whose pattern one of
its frames matches. Samples waiting on or waking a thread (futexes, the scheduler) are told
apart by whose stack they are on: tokio starts its workers on its blocking pool, so a worker's
stack holds `blocking::pool` frames too, and only `multi_thread::worker` tells them apart.
"""
import collections
import re
import sys

WAITING = re.compile(
    r"futex|finish_task_switch|__schedule|try_to_wake_up|schedule_hrtimeout|ep_poll|do_epoll"
    r"|_raw_spin_unlock_irq|sched_yield|pthread_cond|Condvar|Parker|park"
)
PARTS = [
    ("logging", r"tracing_subscriber::fmt|logging::emit|request_log|json_logs|JsonLines|BatchingWriter"),
    ("fiber (async call: switch, stack)", r"wasmtime_fiber|on_fiber|FiberStack|runtime::fiber::"),
    ("backend: lexical search, SQLite reads", r"sqlite3|rusqlite::|SqliteStore|LexicalIndex|lexical_index|rust_stemmers|ChangeClock"),
    ("instantiate (store + instance)", r"InstancePre|VectorService::instance|Store<T>::new|allocate_instance|StoreOpaque::new"),
    ("instance drop (slot reset)", r"pagemap|MemoryImageSlot|decommit|drop_in_place<vector_service_runtime::service::Instance"),
    ("guest call (wasm, canonical ABI, imports)", r"wasm\[|perf-\d+\.map|wasmtime::runtime::component::func|HostFn|invoke_wasm|catch_traps"),
    ("request/answer JSON", r"serde_json|serde_core"),
    ("HTTP (hyper, axum, TCP)", r"hyper::|axum::|tower::|tcp_|sock_|__sys_sendto|__sys_recvfrom|inet_"),
]
PATTERNS = [(name, re.compile(pattern)) for name, pattern in PARTS]


def part(stack):
    text = "\n".join(stack)
    for frame in stack:
        if WAITING.search(frame):
            if "vector-service-log" in text or "json_logs" in text:
                return "logging"
            if "spawn_blocking" in text:
                return "hop: spawn_blocking wakes a pool thread"
            if "multi_thread::worker" in text:
                return "tokio worker: park, unpark, wake"
            if "blocking::pool" in text:
                return "hop: a pool thread waits, wakes the worker"
            return "scheduler, other"
        for name, pattern in PATTERNS:
            if pattern.search(frame):
                return name
    if "multi_thread::worker" in text:
        return "tokio worker, other"
    if "blocking::pool" in text:
        return "pool thread, other"
    return "other"


def samples(lines):
    stack = []
    for line in lines:
        if not line.strip():
            if stack:
                yield stack
            stack = []
        elif line[0] in " \t":
            fields = line.strip().split(" ", 1)
            if len(fields) == 2:
                stack.append(fields[1])
    if stack:
        yield stack


def main():
    with open(sys.argv[1], errors="replace") as lines:
        counts = collections.Counter(part(stack) for stack in samples(lines))
    total = sum(counts.values())
    print(f"{total} samples")
    for name, count in counts.most_common():
        print(f"| {name} | {count} | {100 * count / total:.1f}% |")


if __name__ == "__main__":
    main()
