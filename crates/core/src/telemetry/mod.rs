//! Traces: one OpenTelemetry span per request on the MCP endpoint, a child of the caller's W3C
//! `traceparent` (the header, else `params._meta.traceparent`), whose context the upstream
//! request carries in place of the caller's. Owns the tracer and the per-request span; the
//! queue and the OTLP sending live in `export`.
//!
//! Off unless `[telemetry] otlp_endpoint` is set: the proxy then holds no [`Telemetry`], and a
//! request makes no span, no context and no header change.
//!
//! Attributes follow the OpenTelemetry MCP conventions (`mcp.method.name`, `gen_ai.tool.name`,
//! `mcp.session.id`, `jsonrpc.request.id`) plus the decision, its reason, the deciding rule and
//! the subject. Never the token, never a tool's arguments.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, Span};

use crate::client::HttpClient;
use crate::config::TelemetryConfig;
use crate::mcp::{Inspection, RequestId};
use crate::metrics::Metrics;

mod export;

/// The W3C trace context header.
const TRACEPARENT: &str = "traceparent";

/// The tracer and what it needs, built once at start-up.
pub struct Telemetry {
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
    /// Owns the span processor; kept for as long as the tracer is used.
    _provider: SdkTracerProvider,
}

impl Telemetry {
    /// Builds the exporter and starts its task on the current runtime. `client` sends the OTLP
    /// requests (the proxy's own outbound client type).
    pub fn start(
        config: &TelemetryConfig,
        client: HttpClient,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Telemetry> {
        let processor = export::start(config, client, metrics)?;
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .with_resource(
                Resource::builder_empty()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .build();
        use opentelemetry::trace::TracerProvider as _;
        let tracer = provider.tracer("scopegate");
        Ok(Telemetry {
            tracer,
            propagator: TraceContextPropagator::new(),
            _provider: provider,
        })
    }

    /// The trace of one request, begun when it arrives: its start time and, if the caller sent
    /// a `traceparent` header, the caller's context.
    pub fn begin(&self, headers: &HeaderMap) -> RequestTrace {
        let parent = headers
            .contains_key(TRACEPARENT)
            .then(|| self.propagator.extract(&Headers(headers)));
        RequestTrace {
            tracer: self.tracer.clone(),
            started: SystemTime::now(),
            parent,
            request_id: None,
            span: None,
        }
    }
}

/// One request's span, made when first needed: when the request is forwarded (its context goes
/// upstream) or when it ends, whichever comes first, so that a `traceparent` found in the body
/// can still be its parent.
pub struct RequestTrace {
    tracer: SdkTracer,
    started: SystemTime,
    parent: Option<Context>,
    /// The first message's JSON-RPC id, as text.
    request_id: Option<String>,
    span: Option<Span>,
}

/// What the span says about the request once it is decided and answered.
pub struct Ended<'a> {
    pub method: Option<&'a str>,
    pub tool: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub rule: Option<&'a str>,
    pub decision: &'static str,
    pub reason: &'static str,
    pub status: u16,
}

impl RequestTrace {
    /// Takes what the body says: the first message's id and, when no header carried one, its
    /// `params._meta.traceparent`.
    pub fn observe(&mut self, inspection: &Inspection<'_>) {
        let Some(first) = inspection.messages.first() else {
            return;
        };
        self.request_id = first.id.as_ref().map(|id| match id {
            RequestId::Number(n) => n.to_string(),
            RequestId::String(s) => s.to_string(),
        });
        if self.parent.is_none()
            && let Some(traceparent) = &first.traceparent
        {
            let propagator = TraceContextPropagator::new();
            self.parent = Some(propagator.extract(&Meta(traceparent)));
        }
    }

    /// Puts this span's context on the upstream request, in place of the caller's (W3C Trace
    /// Context: each hop sends its own span as the parent); `tracestate` goes on unchanged.
    pub fn inject(&mut self, headers: &mut HeaderMap) {
        let span = self.span();
        let context = Context::new().with_remote_span_context(span.span_context().clone());
        TraceContextPropagator::new()
            .inject_context(&context, &mut opentelemetry_http::HeaderInjector(headers));
    }

    /// The 32-hex trace id, for the audit line.
    pub fn trace_id(&mut self) -> String {
        self.span().span_context().trace_id().to_string()
    }

    /// Names and ends the span.
    pub fn end(mut self, ended: &Ended<'_>) {
        let request_id = self.request_id.take();
        let span = self.span();
        if !span.is_recording() {
            return;
        }
        let name = match (ended.method, ended.tool) {
            (Some(method), Some(tool)) => Cow::Owned(format!("{method} {tool}")),
            (Some(method), None) => Cow::Owned(method.to_string()),
            (None, _) => Cow::Borrowed("mcp"),
        };
        span.update_name(name);
        let mut attributes = Vec::with_capacity(10);
        let mut text = |key: &'static str, value: Option<&str>| {
            if let Some(value) = value {
                attributes.push(KeyValue::new(key, value.to_string()));
            }
        };
        text("mcp.method.name", ended.method);
        if ended.method == Some("tools/call") {
            text("gen_ai.tool.name", ended.tool);
            text("gen_ai.operation.name", Some("execute_tool"));
        } else if ended.method == Some("prompts/get") {
            text("gen_ai.prompt.name", ended.tool);
        } else if ended.method.is_some_and(|m| m.starts_with("resources/")) {
            text("mcp.resource.uri", ended.tool);
        }
        text("mcp.session.id", ended.session_id);
        text("jsonrpc.request.id", request_id.as_deref());
        text("scopegate.subject", ended.subject);
        text("scopegate.rule", ended.rule);
        attributes.push(KeyValue::new("scopegate.decision", ended.decision));
        attributes.push(KeyValue::new("scopegate.reason", ended.reason));
        attributes.push(KeyValue::new(
            "http.response.status_code",
            i64::from(ended.status),
        ));
        if ended.status >= 400 {
            attributes.push(KeyValue::new("error.type", ended.reason));
            span.set_status(Status::error(ended.reason));
        }
        span.set_attributes(attributes);
        span.end();
    }

    fn span(&mut self) -> &mut Span {
        let parent = self.parent.as_ref();
        let (tracer, started) = (&self.tracer, self.started);
        self.span.get_or_insert_with(|| {
            let builder = tracer
                .span_builder("mcp")
                .with_kind(SpanKind::Server)
                .with_start_time(started);
            match parent {
                Some(parent) => tracer.build_with_context(builder, parent),
                // No caller context: a root span, never the ambient one of whatever ran last.
                None => tracer.build_with_context(builder, &Context::new()),
            }
        })
    }
}

/// The request headers, read by the W3C propagator.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        // Two traceparent headers are ambiguous: W3C says to start afresh.
        let mut values = self.0.get_all(key).iter();
        let value = values.next()?;
        if values.next().is_some() && key == TRACEPARENT {
            return None;
        }
        value.to_str().ok()
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// `params._meta.traceparent` alone.
struct Meta<'a>(&'a str);

impl Extractor for Meta<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}
