//! The `[telemetry]` table: where spans are exported, under which service name, and how many
//! are kept. Not the spans themselves (see `telemetry`).

use http::Uri;

use super::Problems;
use super::raw::RawTelemetry;

/// The `service.name` resource attribute when none is configured.
pub const DEFAULT_SERVICE_NAME: &str = "scopegate";
/// Every root trace kept: a sidecar's traffic is modest, and a sampled-out denial is the one an
/// operator goes looking for. Lower it for busy gateways; a client's sampled flag still wins.
pub const DEFAULT_SAMPLE_RATIO: f64 = 1.0;

/// Validated `[telemetry]`.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// The OTLP/HTTP collector base URL; spans go to `{otlp_endpoint}/v1/traces`.
    pub otlp_endpoint: Uri,
    pub service_name: String,
    /// Share of new root traces kept (parent-based: a request that carries a `traceparent`
    /// follows its caller's decision).
    pub sample_ratio: f64,
}

impl TelemetryConfig {
    /// Where the OTLP/HTTP exporter posts spans.
    pub fn traces_url(&self) -> String {
        let base = self.otlp_endpoint.to_string();
        format!("{}/v1/traces", base.trim_end_matches('/'))
    }
}

/// `None` inside the `Some` when the table is absent or names no endpoint: no exporter.
pub(super) fn validate(
    raw: Option<RawTelemetry>,
    problems: &mut Problems,
) -> Option<Option<TelemetryConfig>> {
    let Some(raw) = raw else {
        return Some(None);
    };
    let sample_ratio = match &raw.sample_ratio {
        Some(ratio) => problems.value(ratio, "telemetry.sample_ratio", |r| {
            if (0.0..=1.0).contains(r) {
                Ok(*r)
            } else {
                Err(format!("{r} is not between 0.0 and 1.0"))
            }
        }),
        None => Some(DEFAULT_SAMPLE_RATIO),
    };
    let Some(endpoint) = raw.otlp_endpoint else {
        return sample_ratio.map(|_| None);
    };
    let otlp_endpoint = problems.value(&endpoint, "telemetry.otlp_endpoint", |s| {
        let uri: Uri = s.parse().map_err(|e| format!("{e}"))?;
        match uri.scheme_str() {
            Some("http" | "https") if uri.host().is_some() => Ok(uri),
            _ => Err("must be an http:// or https:// URL".to_string()),
        }
    });
    Some(Some(TelemetryConfig {
        otlp_endpoint: otlp_endpoint?,
        service_name: raw
            .service_name
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string()),
        sample_ratio: sample_ratio?,
    }))
}
