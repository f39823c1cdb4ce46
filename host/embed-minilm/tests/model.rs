//! all-MiniLM-L6-v2 through candle: the published reference output, batching, and meaning.
//! Its files are fetched by scripts/fetch-minilm.sh, which scripts/test.sh runs; without them
//! the tests fail (they never skip silently).

use vector_service_embed_minilm::MiniLmEmbedder;
use vector_service_runtime::backends::Embedder;

fn model() -> MiniLmEmbedder {
    let dir = MiniLmEmbedder::default_dir();
    assert!(
        dir.join("model.safetensors").is_file(),
        "all-MiniLM-L6-v2 is not in {} (run scripts/fetch-minilm.sh)",
        dir.display()
    );
    MiniLmEmbedder::load(&dir).expect("the model loads")
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn matches_the_reference_output_and_batches_like_single_texts() {
    let model = model();
    let texts = [
        "This is an example sentence",
        "upload failed: connection reset by peer while sending file to storage",
        "",
    ];
    let batch = model.embed(&texts).unwrap();
    // sentence-transformers' published output for the first sentence.
    let reference = [0.0677, 0.0635, 0.0487, 0.0793, 0.0374];
    for (got, want) in batch[0].iter().zip(reference) {
        assert!((got - want).abs() < 1e-3, "{:?}", &batch[0][..5]);
    }
    for (text, batched) in texts.iter().zip(&batch) {
        assert_eq!(batched.len(), 384);
        assert!((dot(batched, batched) - 1.0).abs() < 1e-4, "unit length");
        let alone = &model.embed(&[text]).unwrap()[0];
        assert!(dot(alone, batched) > 0.9999, "padding changed {text:?}");
    }
}

#[test]
fn paraphrases_are_closer_than_unrelated_text() {
    let model = model();
    let v = model
        .embed(&[
            "the file upload failed",
            "could not transfer the document to storage",
            "quarterly revenue grew by ten percent",
        ])
        .unwrap();
    assert!(
        dot(&v[0], &v[1]) > dot(&v[0], &v[2]) + 0.1,
        "{} {}",
        dot(&v[0], &v[1]),
        dot(&v[0], &v[2])
    );
}
