//! JSON-RPC inspection of MCP request bodies: one pass over the bytes that either yields each
//! message's kind, id, method and target (tool, prompt or resource), or refuses the body.
//!
//! The inspector reads a body exactly as the upstream server will, or not at all. Python and
//! JavaScript servers take the last of duplicated keys, strip a byte order mark and accept lone
//! surrogates, so every construct on which two parsers could disagree is refused here: duplicate
//! keys at any depth (compared after unescaping), a BOM, invalid UTF-8, unpaired surrogate escapes,
//! non-standard numbers, trailing data, and nesting deeper than a limit.
//!
//! It owns neither the HTTP checks around the body (size, media type) nor the policy decision;
//! it never re-serialises the body, which is forwarded unchanged.

use std::borrow::Cow;

use crate::reason::Reason;

use serde::de::DeserializeSeed;

use parse::{Ctx, TopSeed};

pub mod headers;
pub mod methods;
mod parse;

/// Deepest nesting accepted by default. MCP messages nest a handful of levels; tool arguments
/// rarely go past ten. Deep nesting only serves to make parsers disagree or run out of stack.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// serde_json refuses the 128th nested level before our visitors see it; a configured limit above
/// this one is clamped so that the refusal always comes from here, as `TooDeep`.
const PARSER_MAX_DEPTH: usize = 126;

/// At most this many characters of a client's key are echoed in an error.
const ECHO_CHARS: usize = 64;

/// Limits on what the inspector accepts.
#[derive(Debug, Clone, Copy)]
pub struct InspectLimits {
    /// Deepest nesting of arrays and objects; the top-level value is depth 1, so the objects of a
    /// batch are depth 2. Default [`DEFAULT_MAX_DEPTH`]; values above 126 act as 126.
    pub max_depth: usize,
}

impl Default for InspectLimits {
    fn default() -> Self {
        Self {
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

/// What a JSON-RPC message is, from the members it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// `method` and `id`: the receiver answers.
    Request,
    /// `method` without `id`: nobody answers.
    Notification,
    /// `id` and exactly one of `result` and `error`, no `method`.
    Response,
}

/// A JSON-RPC id. MCP forbids null ids; only integers that fit 64 bits are accepted, because
/// JavaScript and Python disagree on larger numbers and on fractions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestId<'a> {
    Number(i64),
    String(Cow<'a, str>),
}

impl serde::Serialize for RequestId<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            RequestId::Number(n) => serializer.serialize_i64(*n),
            RequestId::String(s) => serializer.serialize_str(s),
        }
    }
}

/// One inspected JSON-RPC message. Strings borrow from the body unless they held escapes.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub kind: MessageKind,
    /// `None` only for notifications.
    pub id: Option<RequestId<'a>>,
    /// Exactly as sent (no case folding); `None` only for responses.
    pub method: Option<Cow<'a, str>>,
    /// What the method acts on: `params.name` for `tools/call` and `prompts/get`, `params.uri` for
    /// `resources/read`, `resources/subscribe` and `resources/unsubscribe`; `None` otherwise.
    pub target: Option<Cow<'a, str>>,
    /// `params.taskId`: the task handle that `tasks/get`, `tasks/update`, `tasks/cancel` (and
    /// 2025-11-25's `tasks/result`) act on.
    pub task: Option<Cow<'a, str>>,
    /// `params._meta["io.modelcontextprotocol/protocolVersion"]`, which a 2026-07-28 request
    /// carries and its `MCP-Protocol-Version` header must repeat.
    pub protocol_version: Option<Cow<'a, str>>,
    /// `params._meta.traceparent`: the caller's W3C trace context carried in the body.
    pub traceparent: Option<Cow<'a, str>>,
    /// The request says it takes a task for an answer (`params.task`, or the tasks extension
    /// among its client capabilities).
    pub wants_task: bool,
    /// `params.arguments` as sent (validated like every value), for policy conditions that read
    /// them: turned into a value only when one does.
    pub arguments: Option<&'a serde_json::value::RawValue>,
}

/// Every message of a body, in order.
#[derive(Debug)]
pub struct Inspection<'a> {
    /// The body was an array of messages rather than a single one.
    pub batch: bool,
    pub messages: Vec<Message<'a>>,
}

impl<'a> Inspection<'a> {
    /// The id of the first message that has one, for the body of an error response.
    pub fn first_id(&self) -> Option<&RequestId<'a>> {
        self.messages.iter().find_map(|m| m.id.as_ref())
    }
}

/// Why a body was refused. `Display` is a short reason fit for the client; it never echoes more
/// than a few dozen characters of the body.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("body starts with a byte order mark")]
    Bom,
    #[error("body is not valid UTF-8")]
    InvalidUtf8,
    #[error("string holds an unpaired UTF-16 surrogate escape")]
    LoneSurrogate,
    #[error("malformed JSON: {0}")]
    Syntax(#[source] serde_json::Error),
    #[error("data after the JSON value")]
    TrailingData,
    #[error("JSON nested deeper than {max_depth} levels")]
    TooDeep { max_depth: usize },
    /// `key` holds at most 64 characters of the client's key.
    #[error("duplicate key {key:?}")]
    DuplicateKey { key: String },
    #[error("body is neither a JSON-RPC object nor a batch of them")]
    NotAnObject,
    #[error("batch is empty")]
    EmptyBatch,
    #[error("jsonrpc must be \"2.0\"")]
    BadVersion,
    #[error("method must be a string")]
    BadMethod,
    #[error("id must be a string or an integer within 64 bits")]
    BadId,
    #[error("message has both a method and a result or error")]
    Ambiguous,
    #[error("message has neither a method nor a result or error")]
    NotAMessage,
    #[error("response needs an id and exactly one of result and error")]
    BadResponse,
    #[error("params must be an object or an array")]
    BadParams,
    #[error("tools/call needs a string params.name")]
    MissingToolName,
    #[error("prompts/get needs a string params.name")]
    MissingPromptName,
    #[error("resource method needs a string params.uri")]
    MissingResourceUri,
}

impl InspectError {
    /// A bounded snake_case label for metrics and the audit line.
    /// Whether the body was not well-formed JSON as every parser reads it (JSON-RPC's parse
    /// error, -32700), rather than well-formed JSON that is not a valid MCP message (-32600).
    pub fn is_parse_error(&self) -> bool {
        matches!(
            self,
            InspectError::Bom
                | InspectError::InvalidUtf8
                | InspectError::LoneSurrogate
                | InspectError::Syntax(_)
                | InspectError::TrailingData
                | InspectError::TooDeep { .. }
                | InspectError::DuplicateKey { .. }
        )
    }

    pub fn reason(&self) -> Reason {
        match self {
            InspectError::Bom => Reason::Bom,
            InspectError::InvalidUtf8 => Reason::InvalidUtf8,
            InspectError::LoneSurrogate => Reason::LoneSurrogate,
            InspectError::Syntax(_) => Reason::Syntax,
            InspectError::TrailingData => Reason::TrailingData,
            InspectError::TooDeep { .. } => Reason::TooDeep,
            InspectError::DuplicateKey { .. } => Reason::DuplicateKey,
            InspectError::NotAnObject => Reason::NotJsonrpc,
            InspectError::EmptyBatch => Reason::EmptyBatch,
            InspectError::BadVersion => Reason::BadVersion,
            InspectError::BadMethod => Reason::BadMethod,
            InspectError::BadId => Reason::BadId,
            InspectError::Ambiguous => Reason::AmbiguousMessage,
            InspectError::NotAMessage => Reason::NotJsonrpc,
            InspectError::BadResponse => Reason::BadResponse,
            InspectError::BadParams => Reason::BadParams,
            InspectError::MissingToolName => Reason::MissingToolName,
            InspectError::MissingPromptName => Reason::MissingPromptName,
            InspectError::MissingResourceUri => Reason::MissingResourceUri,
        }
    }

    pub(crate) fn duplicate_key(key: &str) -> Self {
        InspectError::DuplicateKey {
            key: key.chars().take(ECHO_CHARS).collect(),
        }
    }

    /// Names a parser error that none of our visitors raised.
    pub(super) fn from_parser(body: &[u8], err: serde_json::Error) -> Self {
        // serde_json reports invalid UTF-8 only as "invalid unicode code point", and only inside
        // strings; checking the whole body on this cold path names it precisely.
        if std::str::from_utf8(body).is_err() {
            return InspectError::InvalidUtf8;
        }
        if err.is_data() {
            // Our visitors accept every JSON type, so this is not expected; the parser's
            // type errors may quote the body, hence no message.
            return InspectError::NotAnObject;
        }
        // serde_json has no public error codes; these are its messages for an unpaired surrogate
        // when reading into a string (which it does for every string here).
        let text = err.to_string();
        if text.starts_with("lone leading surrogate") || text.starts_with("unexpected end of hex") {
            return InspectError::LoneSurrogate;
        }
        InspectError::Syntax(err)
    }
}

/// Inspects a POST body: one JSON-RPC message or a non-empty batch of them. Strings in the result
/// borrow from `body` where the JSON held no escapes.
pub fn inspect<'a>(body: &'a [u8], limits: &InspectLimits) -> Result<Inspection<'a>, InspectError> {
    // Python's json.loads strips a BOM from bytes, so a BOM is where two readers could first part
    // ways; serde_json would call it a syntax error, but it deserves its own name.
    if body.starts_with(b"\xEF\xBB\xBF") {
        return Err(InspectError::Bom);
    }
    let mut ctx = Ctx::new(limits.max_depth.min(PARSER_MAX_DEPTH));
    let mut de = serde_json::Deserializer::from_slice(body);
    let inspection = match (TopSeed { ctx: &mut ctx }).deserialize(&mut de) {
        Ok(inspection) => inspection,
        Err(err) => {
            return Err(ctx
                .failure
                .take()
                .unwrap_or_else(|| InspectError::from_parser(body, err)));
        }
    };
    if de.end().is_err() {
        // Stray bytes after the value may be invalid UTF-8 that the parser never looked inside.
        if std::str::from_utf8(body).is_err() {
            return Err(InspectError::InvalidUtf8);
        }
        return Err(InspectError::TrailingData);
    }
    Ok(inspection)
}

#[cfg(test)]
mod tests;
