//! A component that fits the `vector-service` world and misbehaves when a search asks it to.
//! The tests load it into the real server to show that each misbehaviour stays inside the call
//! that caused it. `Retriever.search` reads its query as a command:
//! - `trap`: panics, which aborts with a wasm trap (a guest bug);
//! - `spin`: loops forever (the call deadline stops it);
//! - `hoard`: allocates until the memory cap refuses to grow;
//! - `flood`: sends 1 MiB log lines until the host-call byte cap stops it;
//! - `flood:N`: sends N such lines, then answers normally (so a test can tell caps apart);
//! - `hold`: searches the backend again and again, keeping every answer's handle;
//! - anything else: answers normally with no hits.
//!
//! The other operations answer `unavailable`: this component exists to misbehave in search.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "vector-service:plugin/vector-service",
        generate_all,
    });
}

use bindings::exports::vector_service::plugin::retriever as ret;
use bindings::vector_service::plugin::retriever_backend;
use bindings::vector_service::plugin::types::Error;
use bindings::wasi::logging::logging::{log, Level};

struct Component;

search_only::other_operations_unavailable!(
    Component,
    "the misbehaving test component only implements search"
);

fn hoard() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touch every page so the allocation is real, not just reserved.
        hoard.push(vec![1u8; 1 << 20]);
        core::hint::black_box(&hoard);
    }
}

fn flood() -> ! {
    loop {
        flood_lines(1);
    }
}

/// `count` log lines of 1 MiB each.
fn flood_lines(count: u32) {
    let line = "x".repeat(1 << 20);
    for _ in 0..count {
        log(Level::Info, "flood", &line);
    }
}

fn hold_answers() -> ! {
    let mut held = Vec::new();
    loop {
        if let Ok((_, answer)) = retriever_backend::search("held", 1, &[]) {
            held.push(answer);
        }
    }
}

fn spin() -> ! {
    let mut counter = 0u64;
    loop {
        counter = core::hint::black_box(counter.wrapping_add(1));
    }
}

impl ret::Guest for Component {
    fn search(
        session_id: String,
        request: ret::SearchRequest,
    ) -> Result<ret::SearchResponse, Error> {
        let query = request.query.as_str();
        if let Some(count) = query.strip_prefix("flood:").and_then(|n| n.parse().ok()) {
            flood_lines(count);
        }
        match query {
            "trap" => panic!("asked to trap"),
            "spin" => spin(),
            "hoard" => hoard(),
            "flood" => flood(),
            "hold" => hold_answers(),
            _ => Ok(ret::SearchResponse {
                session_id,
                hits: Vec::new(),
                fallback: None,
                from_cache: false,
                warnings: Vec::new(),
            }),
        }
    }
}

bindings::export!(Component with_types_in bindings);
