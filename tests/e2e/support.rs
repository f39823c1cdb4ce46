//! What the end-to-end tests share, from the testkit: records and requests, the service over
//! real in-memory backends or scripted doubles, captured logs, parsed metrics and tenants files.

pub use vector_service_runtime::backends::Store;
pub use vector_service_testkit::prelude::*;
pub use vector_service_testkit::tenants_file::{
    api_key_hash, write_numbered_tenants, write_tenants,
};

/// The server binary these tests run (for the testkit's `ServerProcess`).
pub fn server_binary() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_vector-service"))
}
