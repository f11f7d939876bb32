//! Finished spans on their way to the collector: a bounded queue that a request only ever tries
//! to push onto (a full queue drops the span and counts it, it never waits), and one task that
//! takes batches off it and posts them as OTLP/HTTP protobuf through the proxy's own client.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use opentelemetry::Context;
use opentelemetry_http::{HttpClient as OtlpHttpClient, HttpError};
use opentelemetry_otlp::{Protocol, RetryPolicy, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _, SpanProcessor};
use prometheus::IntCounter;
use tokio::sync::mpsc;

use crate::client::HttpClient;
use crate::config::TelemetryConfig;
use crate::metrics::Metrics;

/// Finished spans waiting for export, at most: a few seconds of a busy proxy's spans, a few MiB
/// of memory while the collector is away.
const QUEUED_SPANS: usize = 4096;
/// Spans per export request, at most (the OTLP collector's default batch size).
const MAX_BATCH: usize = 512;
/// How long a span may wait for others to share its export request.
const BATCH_DELAY: Duration = Duration::from_millis(200);
/// Time for one export request; past it the batch is dropped (counted as a failure).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// A collector's answer is a small status message.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The span processor: hands each sampled, finished span to the export task.
pub(super) struct Queue {
    sender: mpsc::Sender<SpanData>,
    dropped: IntCounter,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl SpanProcessor for Queue {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.sender.try_send(span).is_err() {
            self.dropped.inc();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Builds the OTLP exporter and spawns the task that feeds it, on the current runtime.
pub(super) fn start(
    config: &TelemetryConfig,
    client: HttpClient,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Queue> {
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Client(client))
        .with_endpoint(config.traces_url())
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(EXPORT_TIMEOUT)
        // A retry would sleep inside the exporter; the next batch is the retry.
        .with_retry_policy(RetryPolicy::disabled())
        .build()
        .map_err(|error| anyhow::anyhow!("telemetry.otlp_endpoint: {error}"))?;
    // Our processor replaces the SDK's batch one, so the resource is given to the exporter here.
    exporter.set_resource(
        &opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(config.service_name.clone())
            .build(),
    );
    let (sender, mut receiver) = mpsc::channel(QUEUED_SPANS);
    let succeeded = metrics.span_exports.with_label_values(&["success"]);
    let failed = metrics.span_exports.with_label_values(&["failure"]);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            if receiver.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
            // Let a few more join, unless the batch is full already.
            let deadline = tokio::time::Instant::now() + BATCH_DELAY;
            while batch.len() < MAX_BATCH {
                let more = MAX_BATCH - batch.len();
                match tokio::time::timeout_at(deadline, receiver.recv_many(&mut batch, more)).await
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let spans = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
            match exporter.export(spans).await {
                Ok(()) => succeeded.inc(),
                Err(error) => {
                    failed.inc();
                    tracing::warn!(%error, "span export failed; the batch is dropped");
                }
            }
        }
    });
    Ok(Queue {
        sender,
        dropped: metrics.spans_dropped.clone(),
    })
}

/// The proxy's outbound client, as the OTLP exporter's HTTP client.
struct Client(HttpClient);

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Client")
    }
}

#[async_trait::async_trait]
impl OtlpHttpClient for Client {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let request = request.map(Full::new);
        let send = async {
            let response = self.0.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES).collect().await?;
            Ok::<_, HttpError>(http::Response::from_parts(parts, body.to_bytes()))
        };
        tokio::time::timeout(EXPORT_TIMEOUT, send)
            .await
            .map_err(|_| HttpError::from("collector did not answer in time"))?
    }
}
