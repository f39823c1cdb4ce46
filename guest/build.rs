//! The guest's linear memory begins with its shadow stack. Rust's default of 1 MiB made every
//! instance's memory 1,088 KiB, and a pooled slot scans and resets all of it when it is freed
//! (docs/decisions/0006-instances.md). 128 KiB is four times a stack on which the whole test suite passed (32 KiB);
//! an overflow would run below address 0 and trap, never write over the guest's data.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-zstack-size=131072");
}
