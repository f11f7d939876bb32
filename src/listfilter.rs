//! Least-privilege listings: `tools/list` (and `prompts/list`, `resources/list`) responses lose
//! the entries the caller may not call, in JSON and SSE responses alike. A model that never sees
//! a tool it cannot call wastes no turns on it and learns nothing it should not. Everything but
//! the listed entries (pagination cursors, other events, other messages) passes unchanged.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use serde_json::Value;

use crate::policy::{Action, Decision, Mode, ScopeSet};
use crate::proxy::PolicyState;

/// The list methods and, for each, the array it returns, the method that uses an entry, and the
/// entry field the policy decides on.
const LISTS: [(&str, &str, &str, &str); 3] = [
    ("tools/list", "tools", "tools/call", "name"),
    ("prompts/list", "prompts", "prompts/get", "name"),
    ("resources/list", "resources", "resources/read", "uri"),
];

/// Which responses to filter, and for whom.
pub struct ListFilter {
    /// (JSON-RPC id, index into [`LISTS`]) of each list request in the body.
    requests: Vec<(Value, usize)>,
    scopes: ScopeSet,
    policy: Arc<PolicyState>,
}

impl ListFilter {
    /// A filter for the list requests among `requests` (id, method), or `None` when there are
    /// none.
    pub fn for_requests<'a>(
        requests: impl Iterator<Item = (Value, &'a str)>,
        scopes: ScopeSet,
        policy: Arc<PolicyState>,
    ) -> Option<ListFilter> {
        let requests: Vec<(Value, usize)> = requests
            .filter_map(|(id, method)| {
                LISTS
                    .iter()
                    .position(|(list, ..)| *list == method)
                    .map(|i| (id, i))
            })
            .collect();
        (!requests.is_empty()).then_some(ListFilter {
            requests,
            scopes,
            policy,
        })
    }

    /// Filters a whole JSON body (one message or a batch). `None` when nothing changed, so the
    /// original bytes go out.
    pub fn filter_json(&self, body: &[u8]) -> Option<Bytes> {
        let mut value: Value = serde_json::from_slice(body).ok()?;
        let changed = match &mut value {
            // Every message is filtered: no short-circuit.
            Value::Array(messages) => {
                let mut changed = false;
                for message in messages {
                    changed |= self.filter_message(message);
                }
                changed
            }
            message => self.filter_message(message),
        };
        changed.then(|| Bytes::from(serde_json::to_vec(&value).unwrap_or_default()))
    }

    /// Filters the listed entries of one response message; whether anything was removed.
    fn filter_message(&self, message: &mut Value) -> bool {
        let Some(list) = self
            .requests
            .iter()
            .find(|(id, _)| message.get("id") == Some(id))
            .map(|(_, list)| LISTS[*list])
        else {
            return false;
        };
        let (_, field, method, key) = list;
        let Some(entries) = message
            .get_mut("result")
            .and_then(|result| result.get_mut(field))
            .and_then(Value::as_array_mut)
        else {
            return false;
        };
        let before = entries.len();
        entries.retain(|entry| {
            let target = entry.get(key).and_then(Value::as_str);
            self.may_use(method, target)
        });
        entries.len() != before
    }

    /// Whether the caller may use an entry: allowed, or denied by a rule in audit mode (the call
    /// would go through, so the listing must not hide it).
    fn may_use(&self, method: &str, target: Option<&str>) -> bool {
        let action = Action { method, target };
        match self.policy.policy.decide(&self.scopes, &action) {
            Decision::Allow { .. } => true,
            Decision::Deny(denial) => denial.mode == Mode::Audit,
        }
    }

    /// Filters one SSE event (its bytes up to and including the blank line). Events that carry
    /// no matching list response come back unchanged.
    fn filter_event(&self, event: &[u8]) -> Option<Bytes> {
        let text = std::str::from_utf8(event).ok()?;
        let data: String = text
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(|data| data.strip_prefix(' ').unwrap_or(data))
            .collect::<Vec<_>>()
            .join("\n");
        if data.is_empty() {
            return None;
        }
        let filtered = self.filter_json(data.as_bytes())?;
        let mut out = String::with_capacity(event.len());
        let mut data_written = false;
        for line in text.lines() {
            if line.starts_with("data:") {
                if !data_written {
                    out.push_str("data: ");
                    out.push_str(std::str::from_utf8(&filtered).ok()?);
                    out.push('\n');
                    data_written = true;
                }
            } else if !line.is_empty() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push('\n');
        Some(Bytes::from(out))
    }
}

/// An SSE response body with list responses filtered, event by event, as they stream.
pub struct SseListBody<B> {
    inner: B,
    filter: ListFilter,
    pending: BytesMut,
    done: bool,
}

impl<B> SseListBody<B> {
    pub fn new(inner: B, filter: ListFilter) -> Self {
        SseListBody {
            inner,
            filter,
            pending: BytesMut::new(),
            done: false,
        }
    }

    /// The complete events buffered so far, filtered; partial events stay pending.
    fn take_events(&mut self) -> Option<Bytes> {
        let end = last_event_end(&self.pending)?;
        let events = self.pending.split_to(end).freeze();
        let mut out = BytesMut::with_capacity(events.len());
        let mut start = 0;
        while let Some(len) = first_event_end(&events[start..]) {
            let event = &events[start..start + len];
            match self.filter.filter_event(event) {
                Some(filtered) => out.extend_from_slice(&filtered),
                None => out.extend_from_slice(event),
            }
            start += len;
        }
        Some(out.freeze())
    }
}

impl<B> Body for SseListBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            if this.done {
                if this.pending.is_empty() {
                    return Poll::Ready(None);
                }
                // A stream cut mid-event: pass the rest on as it came.
                let rest = this.pending.split().freeze();
                return Poll::Ready(Some(Ok(Frame::data(rest))));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => this.done = true,
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        this.pending.extend_from_slice(&data);
                        if let Some(events) = this.take_events() {
                            return Poll::Ready(Some(Ok(Frame::data(events))));
                        }
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.pending.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// Length of the first complete event (through its blank line), if any.
fn first_event_end(bytes: &[u8]) -> Option<usize> {
    event_ends(bytes).next()
}

/// Length of the buffer up to the end of its last complete event, if any.
fn last_event_end(bytes: &[u8]) -> Option<usize> {
    event_ends(bytes).last()
}

/// Offsets just past each blank line (`\n\n`, `\r\n\r\n` or `\r\r`) that ends an event.
fn event_ends(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            let rest = &bytes[i..];
            let end = if rest.starts_with(b"\r\n\r\n") {
                Some(4)
            } else if rest.starts_with(b"\n\n") || rest.starts_with(b"\r\r") {
                Some(2)
            } else {
                None
            };
            i += 1;
            if let Some(len) = end {
                i += len - 1;
                return Some(i);
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use serde_json::json;

    fn filter(scopes: &[&str]) -> ListFilter {
        let policy = Policy::parse(
            "version = 1\n[[tools]]\nname = \"read\"\nscopes = [\"r\"]\n[[tools]]\nname = \"write\"\nscopes = [\"w\"]\n[[tools]]\nname = \"shadow\"\nscopes = [\"s\"]\nmode = \"audit\"\n",
            "p.toml",
        )
        .unwrap();
        let state = Arc::new(PolicyState {
            policy,
            metadata_document: Bytes::new(),
        });
        ListFilter::for_requests(
            [(json!(1), "tools/list")].into_iter(),
            ScopeSet::new(scopes.iter().copied()),
            state,
        )
        .unwrap()
    }

    fn tools_response(id: Value) -> Value {
        json!({ "jsonrpc": "2.0", "id": id, "result": {
            "tools": [{ "name": "read" }, { "name": "write" }, { "name": "shadow" }, { "name": "unknown" }],
            "nextCursor": "abc"
        }})
    }

    #[test]
    fn json_listing_keeps_only_callable_tools_and_the_cursor() {
        let body = serde_json::to_vec(&tools_response(json!(1))).unwrap();
        let out: Value =
            serde_json::from_slice(&filter(&["r"]).filter_json(&body).unwrap()).unwrap();
        let names: Vec<&str> = out["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["read", "shadow"]);
        assert_eq!(out["result"]["nextCursor"], "abc");
    }

    #[test]
    fn other_responses_pass_untouched() {
        let body = serde_json::to_vec(&tools_response(json!(2))).unwrap();
        assert!(filter(&["r"]).filter_json(&body).is_none());
    }

    #[tokio::test]
    async fn sse_events_are_filtered_as_they_stream() {
        use http_body_util::{BodyExt, StreamBody};
        let listing = serde_json::to_string(&tools_response(json!(1))).unwrap();
        let stream =
            format!("id: 0\ndata: \n\nevent: message\nid: 1\ndata: {listing}\n\n: keep-alive\n\n");
        // Cut the stream mid-event, as the network may.
        let (a, b) = stream.split_at(30);
        let chunks = vec![
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(a.to_string()))),
            Ok(Frame::data(Bytes::from(b.to_string()))),
        ];
        let body = SseListBody::new(
            StreamBody::new(futures_util::stream::iter(chunks)),
            filter(&["w"]),
        );
        let out = body.collect().await.unwrap().to_bytes();
        let out = std::str::from_utf8(&out).unwrap();
        assert!(
            out.starts_with("id: 0\ndata: \n\nevent: message\nid: 1\ndata: {"),
            "{out}"
        );
        assert!(
            out.contains("\"write\"") && !out.contains("\"read\""),
            "{out}"
        );
        assert!(out.ends_with("\n\n: keep-alive\n\n"), "{out}");
    }
}
