//! The OpenAI-compatible HTTP embedder against a real HTTP server on loopback (the testkit's
//! scripted endpoint, a double for TEI, vLLM or Ollama): batching, ordering, authorisation,
//! retries, timeouts and dimension checks.

use std::time::Duration;

use vector_service_embed_http::{HttpEmbedder, HttpEmbedderConfig};
use vector_service_runtime::api::BackendError;
use vector_service_runtime::backends::{hashing_embedder, Embedder};
use vector_service_testkit::embeddings_endpoint::{EmbeddingsEndpoint, Reply};

/// A client of `server` that gives up and backs off quickly.
fn config(server: &EmbeddingsEndpoint) -> HttpEmbedderConfig {
    HttpEmbedderConfig {
        timeout: Duration::from_secs(2),
        backoff: Duration::from_millis(10),
        ..HttpEmbedderConfig::new(&server.url, "test-model")
    }
}

#[test]
fn batches_are_sized_ordered_by_index_normalised_and_authorised() {
    let server = EmbeddingsEndpoint::start(&[]);
    let embedder = HttpEmbedder::new(HttpEmbedderConfig {
        batch_size: 4,
        api_key: Some("secret".into()),
        ..config(&server)
    });
    let texts: Vec<String> = (0..10).map(|i| format!("upload {i} failed")).collect();
    let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = embedder.embed(&inputs).unwrap();
    assert_eq!(vectors.len(), 10);
    for (text, vector) in inputs.iter().zip(&vectors) {
        assert_eq!(vector, &hashing_embedder::embed(text), "{text}");
    }
    assert_eq!(server.batch_sizes(), [4, 4, 2]);
    assert!(server
        .authorizations()
        .iter()
        .all(|a| a.as_deref() == Some("Bearer secret")));
    assert_eq!(embedder.version(), "openai-compatible:test-model:384-dims");
}

#[test]
fn transient_failures_are_retried_and_permanent_ones_are_not() {
    let server = EmbeddingsEndpoint::start(&[
        Reply::Status(503, ""),
        Reply::Status(429, "retry-after: 0\r\n"),
    ]);
    let embedder = HttpEmbedder::new(config(&server));
    assert_eq!(embedder.embed(&["disk full"]).unwrap().len(), 1);
    assert_eq!(server.requests(), 3);

    server.script(&[Reply::Status(400, "")]);
    match embedder.embed(&["disk full"]) {
        Err(BackendError::Failed(message)) => assert!(message.contains("400"), "{message}"),
        other => panic!("a 400 is permanent: {other:?}"),
    }
    assert_eq!(server.requests(), 4, "not retried");

    let rate_limited = HttpEmbedder::new(HttpEmbedderConfig {
        retries: 1,
        ..config(&server)
    });
    server.script(&[Reply::Status(429, ""), Reply::Status(429, "")]);
    assert!(matches!(
        rate_limited.embed(&["x"]),
        Err(BackendError::RateLimited(_))
    ));
}

#[test]
fn a_slow_endpoint_times_out_and_wrong_dimensions_are_named() {
    let server = EmbeddingsEndpoint::start(&[Reply::Slow(Duration::from_millis(800))]);
    let impatient = HttpEmbedder::new(HttpEmbedderConfig {
        timeout: Duration::from_millis(200),
        retries: 0,
        ..config(&server)
    });
    assert!(matches!(
        impatient.embed(&["x"]),
        Err(BackendError::Unavailable(_))
    ));

    server.script(&[Reply::Dimensions(1024)]);
    match HttpEmbedder::new(config(&server)).embed(&["x"]) {
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
