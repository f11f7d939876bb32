//! Least-privilege listings: `tools/list` (and `prompts/list`, `resources/list`) answers lose the
//! entries the caller may not call, whatever path they take back: a POST's JSON or SSE answer, the
//! GET stream, or a stream resumed with `Last-Event-ID` (whose replay the proxy cannot match to
//! the request that asked). A model that never sees a tool it cannot call wastes no turns on it
//! and learns nothing it should not.
//!
//! A listing is recognised by its shape, not by matching ids: every response whose `result`
//! holds a `tools`, `prompts` or `resources` array is filtered. So an answer id written `1.0` for
//! request `1`, a replay, or an answer on another stream are all filtered alike. What cannot be
//! read (invalid JSON, a duplicated key where a listing could be, an event past the size bound)
//! is refused, never relayed unfiltered. An answer that cannot hold a listing at all (none of the
//! three names in its bytes, see `may_hold_listing`) is only checked to be JSON.
//!
//! Filtering splices the upstream's bytes: only the filtered arrays are rewritten, from the kept
//! entries' own bytes, so key order, number forms and everything else stay as the upstream wrote
//! them.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use memchr::memmem::Finder;
use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::auth::Principal;
use crate::integrity::{FIELDS, Integrity};
use crate::mcp_params::ParamHeaders;
use crate::policy::{Action, Arguments, Decision, Facts, Mode, PolicyState};
use crate::sse::{self, Decoder};

/// For each list field of a result: the method that uses an entry, and the entry field the
/// policy decides on.
const LISTS: [(&str, &str, &str); 3] = [
    ("tools", "tools/call", "name"),
    ("prompts", "prompts/get", "name"),
    ("resources", "resources/read", "uri"),
];

/// The methods whose answers are filtered: the listings, and 2026-07-28's change-notification
/// stream, whose resource updates are held to the policy like the resources a listing names.
pub const LIST_METHODS: [&str; 4] = [
    "tools/list",
    "prompts/list",
    "resources/list",
    "subscriptions/listen",
];

/// The notification that names a changed resource: it reaches only a caller who may subscribe
/// to that resource (`resources/subscribe` on its `uri`).
const RESOURCE_UPDATED: &str = "notifications/resources/updated";

/// Whether a JSON text can hold a listing at all: a member named `tools`, `prompts` or
/// `resources` (the filtered arrays, and the resource a change notification names) is either
/// written with its letters, or with a `\u` escape for one of them; any other escape stands for
/// a character no such name holds. Nearly every answer (a tool call's result, an error, an
/// acknowledgement) holds none of these, and is then only checked to be JSON, in one pass,
/// instead of being taken apart member by member. A false positive (the word in a text, an
/// escaped `\\u`) only takes the full path.
fn may_hold_listing(body: &[u8]) -> bool {
    // Searchers built once, not at every answer.
    static WORDS: LazyLock<[Finder<'static>; 4]> =
        LazyLock::new(|| [b"\\u".as_slice(), b"tools", b"prompts", b"resources"].map(Finder::new));
    WORDS.iter().any(|word| word.find(body).is_some())
}

/// A listing that could not be read, so could not be filtered: refused, never passed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(&'static str);

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Filters listings for one caller.
pub struct ListFilter {
    principal: Arc<Principal>,
    policy: Arc<PolicyState>,
    /// Where the `x-mcp-header` marks of the listed tools are remembered, if anywhere.
    marks: Option<Arc<ParamHeaders>>,
    /// Entries the caller may not use are dropped (`mcp.filter_lists`).
    by_policy: bool,
    /// Tool pins: a tool whose definition does not match its pin may be dropped too.
    integrity: Option<Arc<Integrity>>,
}

impl ListFilter {
    pub fn new(principal: Arc<Principal>, policy: Arc<PolicyState>) -> ListFilter {
        ListFilter {
            principal,
            policy,
            marks: None,
            by_policy: true,
            integrity: None,
        }
    }

    /// Whether entries the caller may not use are dropped (on unless listings are checked only
    /// against pins).
    pub fn by_policy(mut self, on: bool) -> ListFilter {
        self.by_policy = on;
        self
    }

    /// Also checks each listed tool's definition against its pin.
    pub fn checking_pins(mut self, integrity: Option<Arc<Integrity>>) -> ListFilter {
        self.integrity = integrity;
        self
    }

    /// Also remembers each listed tool's `x-mcp-header` marks in `marks`, from the entries this
    /// filter reads anyway.
    pub fn learning(mut self, marks: Arc<ParamHeaders>) -> ListFilter {
        self.marks = Some(marks);
        self
    }

    /// Filters a whole JSON body (one message or a batch). `Ok(None)` when nothing changed, so
    /// the original bytes go out.
    pub fn filter_json(&self, body: &[u8]) -> Result<Option<Bytes>, Unreadable> {
        let text = std::str::from_utf8(body).map_err(|_| Unreadable("listing is not UTF-8"))?;
        if !may_hold_listing(body) {
            // Still read whole: what the proxy cannot read is refused, listing or not.
            serde_json::from_str::<de::IgnoredAny>(text)
                .map_err(|_| Unreadable("answer is not JSON"))?;
            return Ok(None);
        }
        let mut cuts = Vec::new();
        if text.trim_start().starts_with('[') {
            let messages: Vec<&RawValue> =
                serde_json::from_str(text).map_err(|_| Unreadable("listing is not JSON"))?;
            for message in messages {
                self.filter_message(text, message, &mut cuts)?;
            }
        } else {
            let message: &RawValue =
                serde_json::from_str(text).map_err(|_| Unreadable("listing is not JSON"))?;
            self.filter_message(text, message, &mut cuts)?;
        }
        // A result may list its arrays in any order.
        cuts.sort_by_key(|(range, _)| range.start);
        Ok((!cuts.is_empty()).then(|| splice(text, &cuts)))
    }

    /// Finds the listed entries of one response message the caller may not use, as cuts.
    fn filter_message(
        &self,
        base: &str,
        message: &RawValue,
        cuts: &mut Vec<(Range<usize>, String)>,
    ) -> Result<(), Unreadable> {
        let Some(RawObject(members)) = RawObject::parse(message)? else {
            return Ok(());
        };
        // Whatever else the message holds: a reader that allows extra members (the Python SDK)
        // takes `{"method": null, "result": …}` for a response.
        let Some(result) = find(&members, "result")? else {
            return Ok(());
        };
        let Some(RawObject(fields)) = RawObject::parse(result)? else {
            return Ok(());
        };
        let mut listing = false;
        for (field, method, key) in LISTS {
            let Some(list) = find(&fields, field)? else {
                continue;
            };
            // Not an array: no client reads it as a listing.
            let Ok(entries) = serde_json::from_str::<Vec<&RawValue>>(list.get()) else {
                continue;
            };
            listing = true;
            let mut kept = Vec::with_capacity(entries.len());
            for entry in &entries {
                let members = RawObject::parse(entry)?;
                let target = match &members {
                    Some(RawObject(members)) => {
                        let target = find(members, key)?
                            .and_then(|raw| serde_json::from_str::<Cow<'_, str>>(raw.get()).ok());
                        if let (Some(marks), "tools", Some(name)) = (&self.marks, field, &target) {
                            marks.learn(name, find(members, "inputSchema")?.map(RawValue::get));
                        }
                        target
                    }
                    None => None,
                };
                // Every listed tool is checked against its pin, whoever may use it: a change is
                // caught at the first listing that shows it.
                let pinned = match (&self.integrity, field) {
                    (Some(integrity), "tools") => {
                        self.matches_pin(integrity, members.as_ref(), target.as_deref())?
                    }
                    _ => true,
                };
                if pinned && (!self.by_policy || self.may_use(method, target.as_deref())) {
                    kept.push(entry.get());
                }
            }
            if kept.len() != entries.len() {
                let start = offset(base, list.get());
                let replacement = format!("[{}]", kept.join(","));
                cuts.push((start..start + list.get().len(), replacement));
            }
        }
        if listing {
            mark_private(base, result, &fields, cuts)?;
        }
        Ok(())
    }

    /// Whether a listed tool stays: its definition fields, read from the entry's own members
    /// (parsed again only when their bytes are new), match its pin (or a change is only
    /// audited).
    fn matches_pin(
        &self,
        integrity: &Integrity,
        members: Option<&RawObject<'_>>,
        name: Option<&str>,
    ) -> Result<bool, Unreadable> {
        let Some(RawObject(members)) = members else {
            return Ok(integrity.observe(
                None,
                Err(crate::integrity::NotCanonical("entry")),
                &self.policy.policy,
            ));
        };
        let mut fields = [None; 6];
        for (raw, field) in fields.iter_mut().zip(FIELDS) {
            *raw = find(members, field)?.map(RawValue::get);
        }
        Ok(integrity.observe(name, integrity.fingerprint(fields), &self.policy.policy))
    }

    /// Whether the caller may use an entry: allowed, or denied by a rule in audit mode (the call
    /// would go through, so the listing must not hide it).
    fn may_use(&self, method: &str, target: Option<&str>) -> bool {
        let action = Action { method, target };
        let policy = &self.policy.policy;
        let scopes = policy.granted(&self.principal.granted, &self.principal.granted_cache);
        // The arguments are not known before a call: conditions that read them are left to it.
        let facts = Facts {
            claims: &self.principal.claims,
            claims_cache: &self.principal.claims_cache,
            arguments: Arguments::Unknown,
        };
        match policy.decide_with(&scopes, &action, &facts) {
            Decision::Allow { .. } => true,
            Decision::Deny(denial) => denial.mode == Mode::Audit,
        }
    }

    /// Whether an event's message is a resource update the caller may not hear of: on the
    /// `subscriptions/listen` stream (2026-07-28) a subscription names its resources in its
    /// parameters, which no policy rule decided, so the updates are decided here instead.
    fn hides_update(&self, data: &str) -> Result<bool, Unreadable> {
        if !data.contains(RESOURCE_UPDATED) {
            return Ok(false);
        }
        let message: &RawValue =
            serde_json::from_str(data).map_err(|_| Unreadable("event is not JSON"))?;
        let Some(RawObject(members)) = RawObject::parse(message)? else {
            return Ok(false);
        };
        let method = find(&members, "method")?
            .and_then(|raw| serde_json::from_str::<Cow<'_, str>>(raw.get()).ok());
        if method.as_deref() != Some(RESOURCE_UPDATED) {
            return Ok(false);
        }
        let uri = match find(&members, "params")? {
            Some(params) => match RawObject::parse(params)? {
                Some(RawObject(fields)) => find(&fields, "uri")?
                    .and_then(|raw| serde_json::from_str::<Cow<'_, str>>(raw.get()).ok()),
                None => None,
            },
            None => None,
        };
        Ok(!self.may_use("resources/subscribe", uri.as_deref()))
    }

    /// One SSE event as it goes to the client, always written anew from the fields the
    /// standard's grammar gives and never as the upstream's bytes: a reader that splits lines
    /// elsewhere too (httpx at `\x0c`, U+2028, …) or strips other prefixes sees only what was
    /// read and checked here. Empty when the event is dropped.
    fn filter_event(&self, event: &sse::Event) -> Result<Bytes, Unreadable> {
        let mut out = BytesMut::new();
        for (name, value) in [
            ("event", &event.event),
            ("id", &event.id),
            ("retry", &event.retry),
        ] {
            if let Some(value) = value {
                if value.contains(OTHER_LINE_BREAKS) {
                    return Err(Unreadable(
                        "event field holds a line break some readers see",
                    ));
                }
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b"\n");
            }
        }
        let Some(data) = event.data.as_deref() else {
            // Comments and keep-alives: an empty comment keeps the connection's use, not its text.
            if out.is_empty() {
                return Ok(Bytes::from_static(b":\n\n"));
            }
            out.extend_from_slice(b"\n");
            return Ok(out.freeze());
        };
        let filtered;
        let data = if data.trim_matches([' ', '\t', '\n']).is_empty() {
            // The empty priming event of a resumable stream.
            data
        } else {
            if self.hides_update(data)? {
                return Ok(Bytes::new());
            }
            filtered = self.filter_json(data.as_bytes())?;
            match &filtered {
                Some(bytes) => std::str::from_utf8(bytes).unwrap_or_default(),
                None => data,
            }
        };
        // Valid JSON holds these only inside strings, where their escapes mean the same. Rare:
        // copied only when present.
        let escaped;
        let data = if data.contains(['\u{85}', '\u{2028}', '\u{2029}']) {
            escaped = data
                .replace('\u{85}', "\\u0085")
                .replace('\u{2028}', "\\u2028")
                .replace('\u{2029}', "\\u2029");
            escaped.as_str()
        } else {
            data
        };
        for line in data.split('\n') {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\n");
        }
        out.extend_from_slice(b"\n");
        Ok(out.freeze())
    }

    /// Every complete event `decoder` holds, filtered and written anew into `out`; on `Err`,
    /// `out` holds the events before the one that could not be read.
    fn filter_events(&self, decoder: &mut Decoder, out: &mut BytesMut) -> Result<(), Unreadable> {
        while let Some(event) = decoder
            .next_event()
            .map_err(|_| Unreadable("event past the size bound"))?
        {
            out.extend_from_slice(&self.filter_event(&event)?);
        }
        Ok(())
    }

    /// A whole event-stream body, filtered: for an answer that is held until it is complete.
    /// A partial event at its end is dropped, as every reader that follows the standard does.
    pub fn filter_event_stream(
        &self,
        body: &[u8],
        max_event_bytes: usize,
    ) -> Result<Bytes, Unreadable> {
        let mut decoder = Decoder::new(max_event_bytes);
        decoder.push(body);
        let mut out = BytesMut::new();
        self.filter_events(&mut decoder, &mut out)?;
        Ok(out.freeze())
    }
}

/// Characters that no line of an event may hold, since some readers end lines there too
/// (Python's `str.splitlines`, which httpx uses): kept out of every field written.
const OTHER_LINE_BREAKS: [char; 8] = [
    '\u{0b}', '\u{0c}', '\u{1c}', '\u{1d}', '\u{1e}', '\u{85}', '\u{2028}', '\u{2029}',
];

/// A listing filtered for one caller is that caller's alone (MCP 2026-07-28 caching): its
/// `cacheScope` says `"private"`, so no shared cache hands it to a caller with other rights,
/// whether or not this caller's copy lost an entry. A result without `cacheScope` gets one when
/// it carries `ttlMs` (a 2026-07-28 result, which a client may cache); an older result is left as
/// it came, since its clients do not cache by these fields.
fn mark_private(
    base: &str,
    result: &RawValue,
    fields: &[(Cow<'_, str>, &RawValue)],
    cuts: &mut Vec<(Range<usize>, String)>,
) -> Result<(), Unreadable> {
    const PRIVATE: &str = "\"private\"";
    match find(fields, "cacheScope")? {
        Some(scope) if scope.get() == PRIVATE => {}
        Some(scope) => {
            let start = offset(base, scope.get());
            cuts.push((start..start + scope.get().len(), PRIVATE.to_string()));
        }
        None if find(fields, "ttlMs")?.is_some() => {
            // Right after the result's `{`: it has members (the listing), so a comma follows.
            let at = offset(base, result.get()) + 1;
            cuts.push((at..at, format!("\"cacheScope\":{PRIVATE},")));
        }
        None => {}
    }
    Ok(())
}

/// The object members of a JSON value, in order, each value as its raw text; a duplicated member
/// name is kept twice, so that [`find`] can refuse it.
struct RawObject<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> RawObject<'a> {
    /// `None` when the value is not an object.
    fn parse(raw: &'a RawValue) -> Result<Option<RawObject<'a>>, Unreadable> {
        if !raw.get().starts_with('{') {
            return Ok(None);
        }
        serde_json::from_str(raw.get())
            .map(Some)
            .map_err(|_| Unreadable("listing is not JSON"))
    }
}

/// The member `name`, if present once; a duplicate is refused, since JSON parsers disagree on
/// which copy wins.
fn find<'a>(
    members: &[(Cow<'a, str>, &'a RawValue)],
    name: &str,
) -> Result<Option<&'a RawValue>, Unreadable> {
    let mut found = members.iter().filter(|(key, _)| key == name);
    match (found.next(), found.next()) {
        (None, _) => Ok(None),
        (Some((_, value)), None) => Ok(Some(value)),
        (Some(_), Some(_)) => Err(Unreadable("listing has a duplicated key")),
    }
}

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    members.push((key.0, map.next_value::<&'de RawValue>()?));
                }
                Ok(RawObject(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// A member name, borrowed unless it held escapes (`"t\u006fols"` is `tools`).
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> Visitor<'de> for Name {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(Name)
    }
}

/// Where `part`, a slice of `base`, starts in it.
fn offset(base: &str, part: &str) -> usize {
    part.as_ptr() as usize - base.as_ptr() as usize
}

/// `base` with each range replaced; the ranges are in order and do not overlap.
fn splice(base: &str, cuts: &[(Range<usize>, String)]) -> Bytes {
    let mut out = String::with_capacity(base.len());
    let mut at = 0;
    for (range, replacement) in cuts {
        out.push_str(&base[at..range.start]);
        out.push_str(replacement);
        at = range.end;
    }
    out.push_str(&base[at..]);
    Bytes::from(out)
}

/// An SSE response body with listings filtered, event by event, as they stream. An event that
/// cannot be read or filtered ends the stream there: nothing unfiltered is relayed.
pub struct SseListBody<B> {
    inner: B,
    filter: ListFilter,
    decoder: Decoder,
    done: bool,
}

impl<B> SseListBody<B> {
    /// `max_event_bytes` bounds what is buffered for one event.
    pub fn new(inner: B, filter: ListFilter, max_event_bytes: usize) -> Self {
        SseListBody {
            inner,
            filter,
            decoder: Decoder::new(max_event_bytes),
            done: false,
        }
    }

    /// The complete events received so far, filtered; `None` when none is complete yet.
    fn take_events(&mut self) -> Option<Bytes> {
        let mut out = BytesMut::new();
        if let Err(error) = self.filter.filter_events(&mut self.decoder, &mut out) {
            self.refuse(&error.to_string());
        }
        (!out.is_empty()).then(|| out.freeze())
    }

    fn refuse(&mut self, why: &str) {
        tracing::warn!(
            reason = why,
            "event stream ended: a listing could not be filtered"
        );
        self.done = true;
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
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    // A partial event at the end is discarded by every reader that follows the
                    // standard; it is not relayed unread.
                    this.decoder.finish();
                    this.done = true;
                }
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        this.decoder.push(&data);
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
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
#[path = "listfilter_tests.rs"]
mod tests;
