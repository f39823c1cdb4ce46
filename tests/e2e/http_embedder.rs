//! The OpenAI-compatible HTTP embedder against a real HTTP server on loopback. The server
//! speaks the `/v1/embeddings` protocol with the hashing embedder behind it and can be
//! scripted to fail (503, 429 with Retry-After, 400, slow answers, wrong dimensions): these
//! tests are about fault handling, so the server is a test double for TEI, vLLM or Ollama.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use vector_service_embed_http::{HttpEmbedder, HttpEmbedderConfig};
use vector_service_runtime::api::BackendError;
use vector_service_runtime::backends::hashing_embedder;
use vector_service_runtime::backends::{Backends, Embedder};
use vector_service_sqlite::{SearchMode, SqliteStore};

use crate::support::*;

/// How the server answers the next request.
#[derive(Clone)]
pub(crate) enum Reply {
    Embeddings,
    Status(u16, &'static str),
    Slow(Duration),
    Dimensions(usize),
}

#[derive(Default)]
struct Seen {
    batch_sizes: Vec<usize>,
    authorization: Vec<Option<String>>,
}

pub(crate) struct Server {
    pub(crate) url: String,
    script: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Seen>>,
}

impl Server {
    /// Answers with embeddings unless the script says otherwise.
    pub(crate) fn start(script: &[Reply]) -> Self {
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
    pub(crate) fn vector_search_flags(&self) -> [&str; 6] {
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
    pub(crate) fn authorizations(&self) -> Vec<Option<String>> {
        self.seen.lock().unwrap().authorization.clone()
    }

    /// Embedding requests received so far.
    pub(crate) fn requests(&self) -> usize {
        self.seen.lock().unwrap().batch_sizes.len()
    }

    fn config(&self) -> HttpEmbedderConfig {
        HttpEmbedderConfig {
            timeout: Duration::from_secs(2),
            backoff: Duration::from_millis(10),
            ..HttpEmbedderConfig::new(&self.url, "test-model")
        }
    }
}

fn serve(stream: TcpStream, script: &Mutex<VecDeque<Reply>>, seen: &Mutex<Seen>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut length = 0;
        let mut authorization = None;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "authorization" => authorization = Some(value.trim().to_string()),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let request: Value = serde_json::from_slice(&body).unwrap();
        let inputs: Vec<String> = request["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|text| text.as_str().unwrap().to_string())
            .collect();
        {
            let mut seen = seen.lock().unwrap();
            seen.batch_sizes.push(inputs.len());
            seen.authorization.push(authorization);
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

#[test]
fn batches_are_sized_ordered_by_index_normalised_and_authorised() {
    let server = Server::start(&[]);
    let embedder = HttpEmbedder::new(HttpEmbedderConfig {
        batch_size: 4,
        api_key: Some("secret".into()),
        ..server.config()
    });
    let texts: Vec<String> = (0..10).map(|i| format!("upload {i} failed")).collect();
    let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = embedder.embed(&inputs).unwrap();
    assert_eq!(vectors.len(), 10);
    for (text, vector) in inputs.iter().zip(&vectors) {
        assert_eq!(vector, &hashing_embedder::embed(text), "{text}");
    }
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.batch_sizes, [4, 4, 2]);
    assert!(seen
        .authorization
        .iter()
        .all(|a| a.as_deref() == Some("Bearer secret")));
    assert_eq!(embedder.version(), "openai-compatible:test-model:384-dims");
}

#[test]
fn transient_failures_are_retried_and_permanent_ones_are_not() {
    let server = Server::start(&[
        Reply::Status(503, ""),
        Reply::Status(429, "retry-after: 0\r\n"),
    ]);
    let embedder = HttpEmbedder::new(server.config());
    assert_eq!(embedder.embed(&["disk full"]).unwrap().len(), 1);
    assert_eq!(server.seen.lock().unwrap().batch_sizes.len(), 3);

    server
        .script
        .lock()
        .unwrap()
        .extend([Reply::Status(400, "")]);
    match embedder.embed(&["disk full"]) {
        Err(BackendError::Failed(message)) => assert!(message.contains("400"), "{message}"),
        other => panic!("a 400 is permanent: {other:?}"),
    }
    assert_eq!(
        server.seen.lock().unwrap().batch_sizes.len(),
        4,
        "not retried"
    );

    let rate_limited = HttpEmbedder::new(HttpEmbedderConfig {
        retries: 1,
        ..server.config()
    });
    server
        .script
        .lock()
        .unwrap()
        .extend([Reply::Status(429, ""), Reply::Status(429, "")]);
    assert!(matches!(
        rate_limited.embed(&["x"]),
        Err(BackendError::RateLimited(_))
    ));
}

#[test]
fn a_slow_endpoint_times_out_and_wrong_dimensions_are_named() {
    let server = Server::start(&[Reply::Slow(Duration::from_millis(800))]);
    let impatient = HttpEmbedder::new(HttpEmbedderConfig {
        timeout: Duration::from_millis(200),
        retries: 0,
        ..server.config()
    });
    assert!(matches!(
        impatient.embed(&["x"]),
        Err(BackendError::Unavailable(_))
    ));

    server
        .script
        .lock()
        .unwrap()
        .extend([Reply::Dimensions(1024)]);
    match HttpEmbedder::new(server.config()).embed(&["x"]) {
        Err(BackendError::Failed(message)) => {
            assert!(
                message.contains("1024") && message.contains("384"),
                "{message}"
            )
        }
        other => panic!("wrong dimensions must fail: {other:?}"),
    }

    let nobody = HttpEmbedder::new(HttpEmbedderConfig {
        retries: 1,
        ..HttpEmbedderConfig::new("http://127.0.0.1:9/v1", "m")
    });
    assert!(matches!(
        nobody.embed(&["x"]),
        Err(BackendError::Unavailable(_))
    ));
}

#[test]
fn a_backfill_through_the_component_embeds_over_http_and_search_uses_it() {
    let server = Server::start(&[Reply::Status(503, "")]);
    let path = temp_dir("http-embedder").join("tenant.sqlite3");
    let store = Arc::new(
        SqliteStore::open(&path, Arc::new(HttpEmbedder::new(server.config())))
            .unwrap()
            .with_search_mode(SearchMode::Vector),
    );
    crate::sqlite_backend::ingest(&store);
    let (service, _) = service(Backends::single(store.clone()));
    let report = service.backfill("s", &backfill(Some(4), &[])).unwrap();
    assert_eq!(report.status, "success", "{report:?}");
    assert_eq!(report.databases.iter().map(|d| d.embedded).sum::<u64>(), 6);
    assert_eq!(
        store.stats().unwrap().embedding_version,
        "openai-compatible:test-model:384-dims"
    );
    let found = service.search("s", &search("upload failed")).unwrap();
    assert!(found.hits.iter().all(|h| h.reason == "cosine similarity"));
    let top: Vec<_> = found
        .hits
        .iter()
        .take(3)
        .filter_map(|h| h.record_id.clone())
        .collect();
    assert!(top.contains(&"e1".to_string()), "{top:?}");
}
