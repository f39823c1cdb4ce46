//! [`OtlpConfig`] from OpenTelemetry's environment variables
//! (<https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/> and
//! the OTLP exporter's): what is set and not supported is refused by name, never ignored.

use std::time::Duration;

use super::protobuf::Origin;
use crate::sampler::{Sampler, SamplerError};

/// Where and how spans are exported, and which are recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpConfig {
    /// The full URL spans are posted to (`.../v1/traces`).
    pub endpoint: String,
    /// Sent with every export (`OTEL_EXPORTER_OTLP_HEADERS`, e.g. an API key).
    pub headers: Vec<(String, String)>,
    /// Per export request.
    pub timeout: Duration,
    /// `service.name` and the other resource attributes.
    pub resource: Vec<(String, String)>,
    /// Which traces are recorded (`OTEL_TRACES_SAMPLER`, `..._ARG`).
    pub sampler: Sampler,
    /// Spans waiting at most; past it they are dropped and counted.
    pub max_queue_size: usize,
    /// Spans per export at most.
    pub max_export_batch_size: usize,
    /// How long a partial batch waits for more.
    pub schedule_delay: Duration,
}

/// A variable that is set to what this exporter cannot do.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// A protocol other than `http/protobuf` (gRPC, JSON).
    #[error("{name}={value:?}: only http/protobuf is supported (an OTLP collector's port 4318)")]
    Protocol {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// Compression other than `none`.
    #[error("{name}={value:?}: only uncompressed export is supported (none)")]
    Compression {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// An exporter other than `otlp` or `none`.
    #[error("OTEL_TRACES_EXPORTER={0:?}: only otlp or none")]
    Exporter(String),
    /// Not a number of the kind asked for.
    #[error("{name}={value:?} is not {what}")]
    Number {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it should be.
        what: &'static str,
    },
    /// An endpoint that is not an http(s) URL.
    #[error("{name}={value:?}: not a URL starting with http:// or https://")]
    Endpoint {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// A list entry without `=`.
    #[error("{name} has {entry:?}, which is not key=value")]
    Pair {
        /// The variable.
        name: &'static str,
        /// The entry.
        entry: String,
    },
    /// The sampler's variables.
    #[error(transparent)]
    Sampler(#[from] SamplerError),
}

impl OtlpConfig {
    /// The configuration the process environment asks for; None when traces are not to be
    /// exported (no endpoint set, `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`).
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`OtlpConfig::from_env`] over any source of variables.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let set = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        match set("OTEL_TRACES_EXPORTER").as_deref() {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => return Err(ConfigError::Exporter(other.to_string())),
        }
        let endpoint = match (
            set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            set("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(traces), _) => url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces)?,
            (None, Some(base)) => {
                let base = url("OTEL_EXPORTER_OTLP_ENDPOINT", base)?;
                format!("{}/v1/traces", base.trim_end_matches('/'))
            }
            (None, None) => return Ok(None),
        };
        for name in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(value) = set(name) {
                if value != "http/protobuf" {
                    return Err(ConfigError::Protocol { name, value });
                }
                break;
            }
        }
        for name in [
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            "OTEL_EXPORTER_OTLP_COMPRESSION",
        ] {
            if let Some(value) = set(name) {
                if value != "none" {
                    return Err(ConfigError::Compression { name, value });
                }
                break;
            }
        }
        let mut headers = pairs(
            "OTEL_EXPORTER_OTLP_HEADERS",
            set("OTEL_EXPORTER_OTLP_HEADERS"),
        )?;
        for (key, value) in pairs(
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            set("OTEL_EXPORTER_OTLP_TRACES_HEADERS"),
        )? {
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
            headers.push((key, value));
        }
        let millis = |names: &[&'static str], default: u64| -> Result<Duration, ConfigError> {
            for &name in names {
                if let Some(value) = set(name) {
                    return number(name, &value, "a count of milliseconds")
                        .map(Duration::from_millis);
                }
            }
            Ok(Duration::from_millis(default))
        };
        let count = |name: &'static str, default: u64| -> Result<usize, ConfigError> {
            set(name)
                .map_or(Ok(default), |value| {
                    number(name, &value, "a positive count").and_then(|n| {
                        if n == 0 {
                            Err(ConfigError::Number {
                                name,
                                value,
                                what: "a positive count",
                            })
                        } else {
                            Ok(n)
                        }
                    })
                })
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        };
        let max_queue_size = count("OTEL_BSP_MAX_QUEUE_SIZE", 2048)?;
        let mut resource = pairs("OTEL_RESOURCE_ATTRIBUTES", set("OTEL_RESOURCE_ATTRIBUTES"))?;
        let service_name = set("OTEL_SERVICE_NAME")
            .or_else(|| {
                resource
                    .iter()
                    .find(|(k, _)| k == "service.name")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_else(|| "vector-service".to_string());
        resource.retain(|(k, _)| k != "service.name");
        resource.splice(
            0..0,
            [
                ("service.name".to_string(), service_name),
                (
                    "service.version".to_string(),
                    env!("CARGO_PKG_VERSION").to_string(),
                ),
                (
                    "telemetry.sdk.name".to_string(),
                    "vector-service-trace".to_string(),
                ),
                ("telemetry.sdk.language".to_string(), "rust".to_string()),
            ],
        );
        Ok(Some(Self {
            endpoint,
            headers,
            timeout: millis(
                &[
                    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
                    "OTEL_EXPORTER_OTLP_TIMEOUT",
                ],
                10_000,
            )?,
            resource,
            sampler: Sampler::from_names(
                set("OTEL_TRACES_SAMPLER").as_deref(),
                set("OTEL_TRACES_SAMPLER_ARG").as_deref(),
            )?,
            max_queue_size,
            max_export_batch_size: count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)?
                .min(max_queue_size),
            schedule_delay: millis(&["OTEL_BSP_SCHEDULE_DELAY"], 5_000)?,
        }))
    }

    /// The resource and scope every batch names.
    pub(super) fn origin(&self) -> Origin {
        Origin {
            resource: self.resource.clone(),
            scope_name: "vector-service",
            scope_version: env!("CARGO_PKG_VERSION"),
        }
    }
}

fn url(name: &'static str, value: String) -> Result<String, ConfigError> {
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(value)
    } else {
        Err(ConfigError::Endpoint { name, value })
    }
}

fn number(name: &'static str, value: &str, what: &'static str) -> Result<u64, ConfigError> {
    value.parse().map_err(|_| ConfigError::Number {
        name,
        value: value.to_string(),
        what,
    })
}

/// `key=value,key=value` with percent-encoded values (W3C Baggage's form, which both
/// `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_RESOURCE_ATTRIBUTES` use).
fn pairs(name: &'static str, text: Option<String>) -> Result<Vec<(String, String)>, ConfigError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    text.split(',')
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| {
            let (key, value) = entry.split_once('=').ok_or_else(|| ConfigError::Pair {
                name,
                entry: entry.to_string(),
            })?;
            Ok((key.trim().to_string(), percent_decoded(value.trim())))
        })
        .collect()
}

fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::sampler::Root;

    fn config(vars: &[(&str, &str)]) -> Result<Option<OtlpConfig>, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OtlpConfig::from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn nothing_is_exported_unless_an_endpoint_is_set() {
        assert_eq!(config(&[]), Ok(None));
        assert_eq!(config(&[("OTEL_SERVICE_NAME", "x")]), Ok(None));
        let off = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ];
        assert_eq!(config(&off), Ok(None));
        let none = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ];
        assert_eq!(config(&none), Ok(None));
    }

    #[test]
    fn the_standard_variables_are_read() {
        let got = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=a%20b,tenant=t1"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "X-API-KEY=c"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_SERVICE_NAME", "search-eu"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,service.name=ignored",
            ),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.01"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "512"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(got.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(
            got.headers,
            [
                ("tenant".to_string(), "t1".to_string()),
                ("X-API-KEY".to_string(), "c".to_string())
            ]
        );
        assert_eq!(got.timeout, Duration::from_millis(2500));
        assert_eq!(
            got.resource[0],
            ("service.name".to_string(), "search-eu".to_string())
        );
        assert!(got
            .resource
            .contains(&("deployment.environment".to_string(), "prod".to_string())));
        assert_eq!(got.sampler, Sampler::ParentBased(Root::Ratio(0.01)));
        assert_eq!((got.max_queue_size, got.max_export_batch_size), (100, 100));
        let traces = config(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://c/custom")])
            .unwrap()
            .unwrap();
        assert_eq!(traces.endpoint, "https://c/custom");
    }

    #[test]
    fn what_is_not_supported_is_refused_by_name() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317");
        assert!(matches!(
            config(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]),
            Err(ConfigError::Protocol {
                name: "OTEL_EXPORTER_OTLP_PROTOCOL",
                ..
            })
        ));
        assert!(matches!(
            config(&[endpoint, ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")]),
            Err(ConfigError::Compression { .. })
        ));
        assert!(matches!(
            config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]),
            Err(ConfigError::Endpoint { .. })
        ));
        assert!(matches!(
            config(&[endpoint, ("OTEL_BSP_MAX_QUEUE_SIZE", "0")]),
            Err(ConfigError::Number { .. })
        ));
        assert!(matches!(
            config(&[endpoint, ("OTEL_TRACES_SAMPLER", "maybe")]),
            Err(ConfigError::Sampler(_))
        ));
    }
}
