//! The process's memory: the default budget for open tenants, what the process holds resident
//! now, and giving what closed tenants freed back to the system
//! (docs/decisions/0013-residency.md).

/// The memory budget when neither the flag nor the tenants file sets one: a quarter of the
/// memory this process may use (the cgroup's limit, else the machine's), at least 256 MiB.
pub fn default_budget() -> usize {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| kib_field(&text, "MemTotal:"));
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok());
    let usable = match (machine, cgroup) {
        (Some(machine), Some(cgroup)) => machine.min(cgroup),
        (one, other) => one.or(other).unwrap_or(4 << 30),
    };
    (usable / 4).max(256 << 20)
}

/// Bytes this process holds resident now (`VmRSS`), where /proc tells.
pub fn resident_bytes() -> Option<usize> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|text| kib_field(&text, "VmRSS:"))
}

/// A `Name:   N kB` line of a /proc file, in bytes.
fn kib_field(text: &str, name: &str) -> Option<usize> {
    let line = text.lines().find(|line| line.starts_with(name))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

/// Return free pages of the allocator's arenas to the system; a no-op off glibc. glibc keeps
/// freed memory in its arenas for reuse, scattered between live allocations, so a server that
/// had closed thousands of tenants held about twice its heap as resident memory (heaptrack: a
/// 330 MB peak heap at 624 MB RSS).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists under its locks; it takes
    // no pointer of ours and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_and_the_default_budget_are_read_from_proc() {
        let resident = resident_bytes().expect("Linux has /proc/self/status");
        assert!(resident > 1 << 20, "{resident}");
        assert!(default_budget() >= 256 << 20);
        assert_eq!(kib_field("VmRSS:\t  1234 kB\n", "VmRSS:"), Some(1234 << 10));
    }
}
