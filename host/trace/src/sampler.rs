//! Which traces are recorded: OpenTelemetry's samplers, as `OTEL_TRACES_SAMPLER` names them.

use crate::context::{TraceContext, TraceId};

/// A sampling rule. A span with a parent follows its parent's decision under the
/// `ParentBased` rules; a trace's first span is decided by the rule inside.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampler {
    /// Every trace (`always_on`).
    AlwaysOn,
    /// None (`always_off`).
    AlwaysOff,
    /// The fraction of traces, decided by the trace id so every hop that uses the same ratio
    /// agrees.
    Ratio(f64),
    /// The parent's decision when there is a parent, else the rule inside.
    ParentBased(Root),
}

/// The rule for a trace's first span under [`Sampler::ParentBased`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Root {
    /// Every trace started here.
    AlwaysOn,
    /// None.
    AlwaysOff,
    /// This fraction of them, by trace id.
    Ratio(f64),
}

/// Why `OTEL_TRACES_SAMPLER` or its argument was not taken.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SamplerError {
    /// An unknown sampler name.
    #[error("OTEL_TRACES_SAMPLER={0:?} is none of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio")]
    Unknown(String),
    /// A ratio that is not a number from 0 to 1.
    #[error("OTEL_TRACES_SAMPLER_ARG={0:?} is not a ratio from 0 to 1")]
    Ratio(String),
}

impl Default for Sampler {
    /// OpenTelemetry's default: `parentbased_always_on`.
    fn default() -> Self {
        Self::ParentBased(Root::AlwaysOn)
    }
}

impl Sampler {
    /// The sampler `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` name (the ratio
    /// defaults to 1.0, as the specification says).
    pub fn from_names(name: Option<&str>, arg: Option<&str>) -> Result<Self, SamplerError> {
        let ratio = || -> Result<f64, SamplerError> {
            match arg.map(str::trim).filter(|a| !a.is_empty()) {
                None => Ok(1.0),
                Some(text) => text
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| SamplerError::Ratio(text.to_string())),
            }
        };
        Ok(
            match name.map(str::trim).unwrap_or("parentbased_always_on") {
                "always_on" => Self::AlwaysOn,
                "always_off" => Self::AlwaysOff,
                "traceidratio" => Self::Ratio(ratio()?),
                "parentbased_always_on" | "" => Self::ParentBased(Root::AlwaysOn),
                "parentbased_always_off" => Self::ParentBased(Root::AlwaysOff),
                "parentbased_traceidratio" => Self::ParentBased(Root::Ratio(ratio()?)),
                other => return Err(SamplerError::Unknown(other.to_string())),
            },
        )
    }

    /// Whether a span of trace `trace_id` under `parent` (None: a trace's first span) is
    /// sampled.
    pub fn sample(&self, parent: Option<&TraceContext>, trace_id: TraceId) -> bool {
        match (self, parent) {
            (Self::AlwaysOn, _) => true,
            (Self::AlwaysOff, _) => false,
            (Self::Ratio(ratio), _) => by_ratio(*ratio, trace_id),
            (Self::ParentBased(_), Some(parent)) => parent.sampled(),
            (Self::ParentBased(Root::AlwaysOn), None) => true,
            (Self::ParentBased(Root::AlwaysOff), None) => false,
            (Self::ParentBased(Root::Ratio(ratio)), None) => by_ratio(*ratio, trace_id),
        }
    }
}

/// A trace is in the sample when its id's low 8 bytes fall below `ratio` of their range.
fn by_ratio(ratio: f64, trace_id: TraceId) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    // Both sides as fractions of 2^64; 0.0 samples nothing.
    (trace_id.low_u64() as f64) < ratio * 18_446_744_073_709_551_616.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ratios_are_read_as_the_specification_says() {
        assert_eq!(Sampler::from_names(None, None), Ok(Sampler::default()));
        assert_eq!(
            Sampler::from_names(Some("parentbased_traceidratio"), Some("0.01")),
            Ok(Sampler::ParentBased(Root::Ratio(0.01)))
        );
        assert_eq!(
            Sampler::from_names(Some("traceidratio"), None),
            Ok(Sampler::Ratio(1.0))
        );
        assert!(matches!(
            Sampler::from_names(Some("sometimes"), None),
            Err(SamplerError::Unknown(_))
        ));
        assert!(matches!(
            Sampler::from_names(Some("traceidratio"), Some("2")),
            Err(SamplerError::Ratio(_))
        ));
    }

    #[test]
    fn a_ratio_samples_about_its_share_and_a_parent_decides_for_its_children() {
        let sampler = Sampler::ParentBased(Root::Ratio(0.25));
        let sampled = (0..20_000)
            .filter(|_| sampler.sample(None, TraceId::random()))
            .count();
        assert!((4_400..5_600).contains(&sampled), "{sampled} of 20,000");
        let parent = TraceContext::new_root(false);
        assert!(!Sampler::ParentBased(Root::AlwaysOn).sample(Some(&parent), parent.trace_id));
        assert!(!Sampler::Ratio(0.0).sample(None, TraceId::random()));
    }
}
