//! The audit line: one JSON line per decision on the `audit` tracing target, written from the
//! request's context (`ctx`) at its end. Owns the line's fields and their names; not what fills
//! them. Never holds the token or a tool's arguments.

use std::fmt;

use crate::logging::LineFields;

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

/// Writes `line` on the `audit` target: in the JSON log straight onto the writer's queue, in the
/// text log as an event (`message` then `name=value` pairs).
pub fn write(line: &Line<'_>) {
    if crate::logging::audit(MESSAGE, |fields| line.fields(fields)) {
        return;
    }
    // Formatted only if a subscriber takes the event.
    tracing::info!(target: "audit", "{MESSAGE}{}", TextLine(line));
}

/// `line` as the JSON log writes it.
pub fn json(line: &Line<'_>) -> Option<String> {
    crate::logging::audit_json(MESSAGE, |fields| line.fields(fields))
}

/// The audit line's `message`.
const MESSAGE: &str = "decision";

impl Line<'_> {
    /// Every field, in the line's order; absent ones are left out.
    fn fields(&self, out: &mut dyn LineFields) {
        let mut text = |name: &str, value: Option<&str>| {
            if let Some(value) = value {
                out.str(name, value);
            }
        };
        text("request_id", self.request_id);
        text("session_id", self.session_id);
        text("http_method", Some(self.http_method));
        text("subject", self.subject);
        text("client_id", self.client_id);
        text("issuer", self.issuer);
        text("method", self.method);
        text("tool", self.tool);
        text("rule", self.rule);
        out.u64("messages", self.messages as u64);
        out.str("decision", self.decision);
        out.str("reason", self.reason);
        out.display("missing_scopes", &Spaced(self.missing));
        if let Some(condition) = self.condition {
            out.str("condition", condition);
        }
        out.u64("status", u64::from(self.status));
        if let Some(status) = self.upstream_status {
            out.u64("upstream_status", u64::from(status));
        }
        if let Some(ms) = self.upstream_ms {
            out.f64("upstream_ms", ms);
        }
        out.f64("duration_ms", self.duration_ms);
        if let Some(trace_id) = self.trace_id {
            out.str("trace_id", trace_id);
        }
        out.str("policy_hash", self.policy_hash);
    }
}

/// The fields as the text log shows them: ` name=value` each, strings quoted only where they
/// are empty or hold a space or a quote.
struct TextLine<'l, 'a>(&'l Line<'a>);

impl fmt::Display for TextLine<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = Text {
            out: f,
            result: Ok(()),
        };
        self.0.fields(&mut text);
        text.result
    }
}

/// Writes fields as text; the first error stops the rest.
struct Text<W> {
    out: W,
    result: fmt::Result,
}

impl<W: fmt::Write> Text<W> {
    fn write(&mut self, args: fmt::Arguments<'_>) {
        if self.result.is_ok() {
            self.result = self.out.write_fmt(args);
        }
    }
}

impl<W: fmt::Write> LineFields for Text<W> {
    fn str(&mut self, name: &str, value: &str) {
        if value.is_empty() || value.contains([' ', '"']) {
            self.write(format_args!(" {name}={value:?}"));
        } else {
            self.write(format_args!(" {name}={value}"));
        }
    }

    fn u64(&mut self, name: &str, value: u64) {
        self.write(format_args!(" {name}={value}"));
    }

    fn f64(&mut self, name: &str, value: f64) {
        self.write(format_args!(" {name}={value}"));
    }

    fn display(&mut self, name: &str, value: &dyn fmt::Display) {
        self.str(name, &value.to_string());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(missing: &'a [String]) -> Line<'a> {
        Line {
            request_id: Some("r-1"),
            session_id: None,
            http_method: "POST",
            subject: Some("agent \"7\""),
            client_id: Some("agent"),
            issuer: Some("https://idp.example"),
            method: Some("tools/call"),
            tool: Some("get_customer_info"),
            rule: Some("get_customer_info"),
            messages: 1,
            decision: "deny",
            reason: "insufficient_scope",
            missing,
            condition: None,
            status: 403,
            upstream_status: None,
            upstream_ms: None,
            duration_ms: 0.25,
            trace_id: None,
            policy_hash: "6ec6a8c8670a233b",
        }
    }

    #[test]
    fn the_json_line_has_every_present_field_in_order_and_ends_as_the_chain_expects() {
        let missing = ["customer:read".to_string(), "ticket:create".to_string()];
        let text = json(&line(&missing)).unwrap();
        assert!(text.starts_with("{\"timestamp\":\""), "{text}");
        let rest = &text[text.find("\",\"level\"").unwrap()..];
        assert_eq!(
            rest,
            "\",\"level\":\"INFO\",\"message\":\"decision\",\"request_id\":\"r-1\",\
             \"http_method\":\"POST\",\"subject\":\"agent \\\"7\\\"\",\"client_id\":\"agent\",\
             \"issuer\":\"https://idp.example\",\"method\":\"tools/call\",\
             \"tool\":\"get_customer_info\",\"rule\":\"get_customer_info\",\"messages\":1,\
             \"decision\":\"deny\",\"reason\":\"insufficient_scope\",\
             \"missing_scopes\":\"customer:read ticket:create\",\"status\":403,\
             \"duration_ms\":0.25,\"policy_hash\":\"6ec6a8c8670a233b\",\"target\":\"audit\"}\n"
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["subject"], "agent \"7\"");
    }

    #[test]
    fn the_text_line_names_each_field() {
        let text = TextLine(&line(&[])).to_string();
        assert!(
            text.starts_with(" request_id=r-1 http_method=POST subject=\"agent \\\"7\\\"\""),
            "{text}"
        );
        assert!(text.contains(" missing_scopes=\"\" status=403 "), "{text}");
    }
}
