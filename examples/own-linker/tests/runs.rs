//! The example host runs as a platform team would run theirs: it finds the record that matches,
//! counts the call in the runtime's metrics, and its own interface sits in the same Linker.

use std::process::Command;

#[test]
fn the_host_searches_through_its_own_linker_and_counts_the_call() {
    let output = Command::new(env!("CARGO_BIN_EXE_own-linker"))
        .output()
        .expect("own-linker starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let first = stdout.lines().next().unwrap_or_default();
    assert!(first.starts_with("error:e1 score "), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("vector_service_calls_total{")
                && line.contains("tenant=\"platform-demo\"")
                && line.ends_with(" 1")),
        "{stdout}"
    );
    assert!(
        stdout.contains("audit lines recorded by the platform's own interface: 0"),
        "{stdout}"
    );
}
