//! PatchLogger.track_contributors: which vectors contributed to a patch and how it went,
//! written to the primary metrics database, or to the vector metrics database when the primary
//! is unavailable or fails. Only when both fail does the caller get an error.

use serde_json::json;

use crate::bindings::exports::vector_service::plugin::patch_logger::{
    Destination, TrackRequest, TrackResponse,
};
use crate::bindings::vector_service::plugin::clock;
use crate::bindings::vector_service::plugin::metrics_db::{self, ContributorRow, PatchOutcome};
use crate::bindings::vector_service::plugin::telemetry::{
    self, Operation, PatchSample, PatchStatus, Sample,
};
use crate::bindings::vector_service::plugin::types::{Error, VectorRef};
use crate::bindings::vector_service::plugin::vector_metrics_db::{self, VectorOutcome};
use crate::bindings::wasi::logging::logging::Level;
use crate::instrument::{event, instrumented, seconds_since};
use crate::{bounds, errors};

const OPERATION: Operation = Operation::PatchLoggerTrackContributors;
/// The ROI tags the metrics databases know; anything else is recorded as the first.
const ROI_TAGS: [&str; 6] = [
    "success",
    "high-roi",
    "low-roi",
    "bug-introduced",
    "needs-review",
    "blocked",
];

/// The export: one instrumented `PatchLogger.track_contributors` call.
pub fn track_contributors(
    session_id: String,
    request: TrackRequest,
) -> Result<TrackResponse, Error> {
    instrumented(
        OPERATION,
        session_id,
        |response: &TrackResponse| response.rows,
        |session_id| {
            let started = clock::monotonic_now();
            let result = track_in_session(session_id, &request);
            let status = match &result {
                Ok(_) if request.success => PatchStatus::Success,
                Ok(_) => PatchStatus::Failure,
                Err(_) => PatchStatus::Error,
            };
            telemetry::observe(Sample::PatchTracked(PatchSample {
                status,
                duration_seconds: seconds_since(started),
            }));
            result
        },
    )
}

/// Split `origin:id` at the first colon; without a colon the whole string is the id.
pub fn parse_vector_id(vector_id: &str) -> VectorRef {
    let (origin_db, id) = vector_id.split_once(':').unwrap_or(("", vector_id));
    VectorRef {
        origin_db: origin_db.to_string(),
        vector_id: id.to_string(),
    }
}

fn track_in_session(session_id: &str, request: &TrackRequest) -> Result<TrackResponse, Error> {
    bounds::name("patch_id", &request.patch_id)?;
    bounds::names(
        "vector_ids",
        request.vector_ids.iter().map(String::as_str),
        bounds::MAX_VECTOR_IDS,
    )?;
    if let Some(tag) = &request.roi_tag {
        bounds::name("roi_tag", tag)?;
    }
    let contribution = request.contribution.unwrap_or(0.0);
    if !contribution.is_finite() {
        return Err(errors::malformed("contribution must be a finite number"));
    }
    let mut warnings = Vec::new();
    let roi_tag = match request.roi_tag.as_deref().map(str::trim) {
        None | Some("") => ROI_TAGS[0].to_string(),
        Some(tag) if ROI_TAGS.contains(&tag) => tag.to_string(),
        Some(unknown) => {
            let warning = format!("unknown roi_tag {unknown:?}, recorded as {:?}", ROI_TAGS[0]);
            event(Level::Warn, OPERATION, session_id, &warning, json!({}));
            warnings.push(warning);
            ROI_TAGS[0].to_string()
        }
    };
    let vectors: Vec<VectorRef> = request
        .vector_ids
        .iter()
        .map(|id| parse_vector_id(id))
        .collect();
    let rows = vectors.len().max(1) as u32;
    let written = Written {
        session_id,
        request,
        vectors: &vectors,
        roi_tag: &roi_tag,
        contribution,
    };

    let primary_error = if metrics_db::available() {
        match metrics_db::log_patch_outcome(&written.primary_outcome()) {
            Ok(()) => None,
            Err(error) => Some(format!(
                "primary metrics db failed: {}",
                errors::backend_message(&error)
            )),
        }
    } else {
        Some("primary metrics db unavailable".to_string())
    };
    let written_to = match primary_error {
        None => Destination::Primary,
        Some(reason) => {
            event(
                Level::Warn,
                OPERATION,
                session_id,
                &format!("{reason}; writing to the vector metrics db"),
                json!({}),
            );
            vector_metrics_db::record_outcomes(&written.fallback_outcomes()).map_err(|error| {
                Error::Backend(format!(
                    "{reason}; vector metrics db failed: {}",
                    errors::backend_message(&error)
                ))
            })?;
            warnings.push(reason);
            Destination::Fallback
        }
    };
    Ok(TrackResponse {
        session_id: session_id.to_string(),
        status: if request.success {
            "success"
        } else {
            "failure"
        }
        .to_string(),
        written_to,
        rows,
        roi_tag,
        warnings,
    })
}

/// What one call writes, in the shape of either destination.
struct Written<'a> {
    session_id: &'a str,
    request: &'a TrackRequest,
    vectors: &'a [VectorRef],
    roi_tag: &'a str,
    contribution: f64,
}

impl Written<'_> {
    /// One row per contributor (one bare row when there are none) and a win or regret for
    /// every contributor with an origin.
    fn primary_outcome(&self) -> PatchOutcome {
        let contributors = if self.vectors.is_empty() {
            vec![ContributorRow {
                origin_db: None,
                vector_id: None,
            }]
        } else {
            self.vectors
                .iter()
                .map(|v| ContributorRow {
                    origin_db: Some(v.origin_db.clone()),
                    vector_id: Some(v.vector_id.clone()),
                })
                .collect()
        };
        PatchOutcome {
            patch_id: self.request.patch_id.clone(),
            session_id: self.session_id.to_string(),
            success: self.request.success,
            reverted: false,
            label: if self.request.success {
                "positive"
            } else {
                "negative"
            }
            .to_string(),
            roi_tag: self.roi_tag.to_string(),
            contributors,
            credited_origins: self
                .vectors
                .iter()
                .filter(|v| !v.origin_db.is_empty())
                .map(|v| v.origin_db.clone())
                .collect(),
            contribution: self.contribution,
        }
    }

    /// One outcome per contributor; a patch without contributors is still recorded (with an
    /// empty vector reference) so that nothing acknowledged is lost.
    fn fallback_outcomes(&self) -> Vec<VectorOutcome> {
        let empty = [VectorRef {
            origin_db: String::new(),
            vector_id: String::new(),
        }];
        let vectors = if self.vectors.is_empty() {
            &empty[..]
        } else {
            self.vectors
        };
        vectors
            .iter()
            .map(|vector| VectorOutcome {
                session_id: self.session_id.to_string(),
                vector: vector.clone(),
                contribution: self.contribution,
                win: self.request.success,
                regret: !self.request.success,
                patch_id: self.request.patch_id.clone(),
                roi_tag: self.roi_tag.to_string(),
            })
            .collect()
    }
}
