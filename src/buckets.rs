//! Context buckets as the CLI and the server take them: a bucket for an origin the defaults
//! do not know, with the metadata keys its entries are described by.

use vector_service_runtime::api::BucketRule;

/// Metadata keys a custom bucket describes its entries by unless told otherwise: the generic
/// descriptive fields, longest prose first (the default buckets each name their own).
pub fn default_desc_keys() -> Vec<String> {
    ["description", "message", "summary", "title", "name", "text"]
        .map(String::from)
        .to_vec()
}

/// `ORIGIN=BUCKET` (the CLI's `--bucket`): that origin's hits in that bucket, described by
/// [`default_desc_keys`], without a label or metric.
pub fn parse(spec: &str) -> Result<BucketRule, String> {
    match spec.split_once('=') {
        Some((origin, bucket)) if !origin.trim().is_empty() && !bucket.trim().is_empty() => {
            Ok(BucketRule {
                origin: origin.trim().to_string(),
                bucket: bucket.trim().to_string(),
                desc_keys: default_desc_keys(),
                label_key: None,
                metric_keys: Vec::new(),
                inverse_metric: false,
            })
        }
        _ => Err(format!(
            "--bucket {spec:?}: expected ORIGIN=BUCKET, e.g. ticket=tickets"
        )),
    }
}
