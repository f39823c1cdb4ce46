//! A deterministic, offline text embedder: feature hashing of words and character trigrams into
//! a fixed number of dimensions, L2-normalised. No model, no download; similar wording gives
//! similar vectors, which is what the in-memory backend and the tests need.

/// Dimensions of the default embedding (the same as all-MiniLM-L6-v2, so indexes are swappable).
pub const DIMENSIONS: usize = 384;

/// Embed `text` into a unit vector of [`DIMENSIONS`] dimensions (all zeros for text with no words).
pub fn embed(text: &str) -> Vec<f32> {
    let mut vector = vec![0f32; DIMENSIONS];
    let lowered = text.to_lowercase();
    let mut padded: Vec<char> = Vec::new();
    for word in lowered
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        add_feature(&mut vector, fnv1a(FNV_OFFSET, word.as_bytes()), 1.0);
        // Character trigrams of " word ", hashed over their UTF-8 bytes without allocating.
        padded.clear();
        padded.push(' ');
        padded.extend(word.chars());
        padded.push(' ');
        for gram in padded.windows(3) {
            let hash = gram.iter().fold(FNV_OFFSET, |hash, c| {
                fnv1a(hash, c.encode_utf8(&mut [0; 4]).as_bytes())
            });
            add_feature(&mut vector, hash, 0.5);
        }
    }
    normalise(&mut vector);
    vector
}

/// FNV-1a's starting value.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over `bytes`, continuing from `hash` (start from [`FNV_OFFSET`]).
pub fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(x * y)).sum()
}

/// Signed feature hashing: the sign bit reduces the bias of collisions.
fn add_feature(vector: &mut [f32], hash: u64, weight: f32) {
    let index = (hash % DIMENSIONS as u64) as usize;
    let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
    vector[index] += sign * weight;
}

/// Scale `vector` to unit length (a zero vector stays zero).
pub fn normalise(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first, allocating formulation: the version string promises these exact vectors.
    fn reference(text: &str) -> Vec<f32> {
        let mut vector = vec![0f32; DIMENSIONS];
        for word in text
            .to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            add_feature(&mut vector, fnv1a(FNV_OFFSET, word.as_bytes()), 1.0);
            let padded: Vec<char> = format!(" {word} ").chars().collect();
            for gram in padded.windows(3) {
                let gram: String = gram.iter().collect();
                add_feature(&mut vector, fnv1a(FNV_OFFSET, gram.as_bytes()), 0.5);
            }
        }
        normalise(&mut vector);
        vector
    }

    #[test]
    fn vectors_are_unchanged_by_the_allocation_free_rewrite() {
        for text in [
            "Upload failed: connection reset",
            "Ünïcode wörds, 漢字 and ß",
            "",
            "a",
        ] {
            assert_eq!(embed(text), reference(text), "{text:?}");
        }
    }
}
