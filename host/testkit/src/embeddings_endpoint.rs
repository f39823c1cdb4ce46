//! An OpenAI-compatible `/v1/embeddings` endpoint on loopback, with the hashing embedder
//! behind it, that can be scripted to fail (503, 429 with Retry-After, 400, slow answers,
//! wrong dimensions). For tests about fault handling: a double for TEI, vLLM or Ollama.

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use vector_service_runtime::backends::hashing_embedder;

use crate::loopback_http::read_request;

/// How the server answers the next request.
#[derive(Clone)]
pub enum Reply {
    /// Embeddings of the inputs (the hashing embedder's), out of order.
    Embeddings,
    /// This status, with these extra header lines (`name: value\r\n`), and an error body.
    Status(u16, &'static str),
    /// Embeddings, after this delay.
    Slow(Duration),
    /// Embeddings of this many dimensions.
    Dimensions(usize),
}

#[derive(Default)]
struct Seen {
    batch_sizes: Vec<usize>,
    authorization: Vec<Option<String>>,
    traceparent: Vec<Option<String>>,
}

/// The endpoint, serving on a thread per connection until the test process ends.
pub struct EmbeddingsEndpoint {
    /// Its base URL (`http://127.0.0.1:PORT/v1`).
    pub url: String,
    script: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Seen>>,
}

impl EmbeddingsEndpoint {
    /// Answers with embeddings unless the script says otherwise.
    pub fn start(script: &[Reply]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let script = Arc::new(Mutex::new(script.iter().cloned().collect::<VecDeque<_>>()));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (thread_script, thread_seen) = (script.clone(), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (script, seen) = (thread_script.clone(), thread_seen.clone());
                std::thread::spawn(move || serve(stream, &script, &seen));
            }
        });
        Self { url, script, seen }
    }

    /// The server's global flags for vector search over this embedder.
    pub fn vector_search_flags(&self) -> [&str; 6] {
        [
            "--retrieval",
            "vector",
            "--embedder",
            &self.url,
            "--embedding-model",
            "m",
        ]
    }

    /// The `Authorization` header of every request received so far.
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.seen.lock().unwrap().authorization.clone()
    }

    /// The `traceparent` header of every request received so far.
    pub fn traceparents(&self) -> Vec<Option<String>> {
        self.seen.lock().unwrap().traceparent.clone()
    }

    /// Embedding requests received so far.
    pub fn requests(&self) -> usize {
        self.seen.lock().unwrap().batch_sizes.len()
    }

    /// The number of inputs in each request received so far.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.seen.lock().unwrap().batch_sizes.clone()
    }

    /// Answer the next requests with `replies`, after any still scripted.
    pub fn script(&self, replies: &[Reply]) {
        self.script.lock().unwrap().extend(replies.iter().cloned());
    }
}

fn serve(stream: TcpStream, script: &Mutex<VecDeque<Reply>>, seen: &Mutex<Seen>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    while let Some(received) = read_request(&mut reader) {
        let request: Value = serde_json::from_slice(&received.body).unwrap();
        let inputs: Vec<String> = request["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|text| text.as_str().unwrap().to_string())
            .collect();
        {
            let mut seen = seen.lock().unwrap();
            seen.batch_sizes.push(inputs.len());
            seen.authorization
                .push(received.header("authorization").map(str::to_string));
            seen.traceparent
                .push(received.header("traceparent").map(str::to_string));
        }
        let reply = script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Reply::Embeddings);
        let embeddings = |dims: usize| {
            let data: Vec<Value> = inputs
                .iter()
                .enumerate()
                .rev() // out of order on purpose: the client must sort by index
                .map(|(index, text)| {
                    let mut vector = hashing_embedder::embed(text);
                    vector.resize(dims, 0.0);
                    json!({"object": "embedding", "index": index, "embedding": vector})
                })
                .collect();
            json!({"object": "list", "data": data, "model": request["model"]}).to_string()
        };
        let (status, extra, body) = match reply {
            Reply::Embeddings => (200, "", embeddings(hashing_embedder::DIMENSIONS)),
            Reply::Dimensions(dims) => (200, "", embeddings(dims)),
            Reply::Status(status, extra) => (
                status,
                extra,
                json!({"error": {"message": "scripted"}}).to_string(),
            ),
            Reply::Slow(delay) => {
                std::thread::sleep(delay);
                (200, "", embeddings(hashing_embedder::DIMENSIONS))
            }
        };
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n{body}",
            body.len()
        );
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}
