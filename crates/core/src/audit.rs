//! The audit line: one JSON line per decision on the `audit` tracing target, written from the
//! request's context (`ctx`) at its end. Owns the line's fields and their names; not what fills
//! them. Never holds the token or a tool's arguments.

use std::fmt;

/// One request's audit line, borrowed from its context.
pub struct Line<'a> {
    pub request_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub http_method: &'a str,
    pub subject: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub issuer: Option<&'a str>,
    pub method: Option<&'a str>,
    pub tool: Option<&'a str>,
    pub rule: Option<&'a str>,
    pub messages: usize,
    pub decision: &'static str,
    pub reason: &'static str,
    pub missing: &'a [String],
    pub condition: Option<&'a str>,
    pub status: u16,
    pub upstream_status: Option<u16>,
    pub upstream_ms: Option<f64>,
    pub duration_ms: f64,
    pub trace_id: Option<&'a str>,
    pub policy_hash: &'a str,
}

/// Writes `line` on the `audit` target.
pub fn write(line: &Line<'_>) {
    tracing::info!(
        target: "audit",
        request_id = line.request_id,
        session_id = line.session_id,
        http_method = line.http_method,
        subject = line.subject,
        client_id = line.client_id,
        issuer = line.issuer,
        method = line.method,
        tool = line.tool,
        rule = line.rule,
        messages = line.messages,
        decision = line.decision,
        reason = line.reason,
        missing_scopes = %Spaced(line.missing),
        condition = line.condition,
        status = line.status,
        upstream_status = line.upstream_status,
        upstream_ms = line.upstream_ms,
        duration_ms = line.duration_ms,
        trace_id = line.trace_id,
        policy_hash = line.policy_hash,
        "decision"
    );
}

/// Scopes separated by spaces, written straight into the line (no joined copy).
struct Spaced<'a>(&'a [String]);

impl fmt::Display for Spaced<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope)?;
        }
        Ok(())
    }
}
