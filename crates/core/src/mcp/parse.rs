//! The serde visitors behind [`inspect`](super::inspect): one pass over the body that validates
//! every value and keeps only what a message needs.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{InspectError, Inspection, Message, MessageKind, RequestId};

/// An object with more keys than this checks duplicates through a hash set instead of a linear
/// scan, so a body of many thousand keys cannot make the check quadratic.
const LINEAR_KEY_SCAN: usize = 32;

/// State shared by every visitor of one inspection.
pub(super) struct Ctx<'de> {
    max_depth: usize,
    /// The keys of every object being read, innermost last; see [`Keys`].
    keys: Vec<Cow<'de, str>>,
    /// `params.name` and `params.uri` of the message being read, when they are strings.
    targets: Targets<'de>,
    /// The precise error behind the opaque one handed to serde_json.
    pub(super) failure: Option<InspectError>,
}

impl Ctx<'_> {
    pub(super) fn new(max_depth: usize) -> Self {
        Self {
            max_depth,
            keys: Vec::with_capacity(16),
            targets: Targets::default(),
            failure: None,
        }
    }

    fn fail<E: de::Error>(&mut self, err: InspectError) -> E {
        self.failure = Some(err);
        E::custom("refused")
    }

    fn enter<E: de::Error>(&mut self, depth: usize) -> Result<(), E> {
        if depth > self.max_depth {
            return Err(self.fail(InspectError::TooDeep {
                max_depth: self.max_depth,
            }));
        }
        Ok(())
    }
}

/// The keys seen so far in one object. They live on the shared stack in [`Ctx`] from `start` on,
/// which works because an object's keys are pushed before its values, and a nested object pops its
/// own keys when it ends. A large object moves its keys into a set of its own.
struct Keys<'de> {
    start: usize,
    spilled: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> Keys<'de> {
    fn begin(ctx: &Ctx<'de>) -> Self {
        Self {
            start: ctx.keys.len(),
            spilled: None,
        }
    }

    fn insert<E: de::Error>(&mut self, ctx: &mut Ctx<'de>, key: Cow<'de, str>) -> Result<(), E> {
        if let Some(set) = &mut self.spilled {
            if set.contains(&key) {
                return Err(ctx.fail(InspectError::duplicate_key(&key)));
            }
            set.insert(key);
            return Ok(());
        }
        let seen = &ctx.keys[self.start..];
        if seen.contains(&key) {
            return Err(ctx.fail(InspectError::duplicate_key(&key)));
        }
        if seen.len() >= LINEAR_KEY_SCAN {
            let mut set: HashSet<_> = ctx.keys.drain(self.start..).collect();
            set.insert(key);
            self.spilled = Some(set);
        } else {
            ctx.keys.push(key);
        }
        Ok(())
    }

    fn end(self, ctx: &mut Ctx<'de>) {
        ctx.keys.truncate(self.start);
    }
}

/// Reads an object key, borrowed when it held no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// The little a caller needs to know about a value once it has been validated.
enum Shape<'de> {
    Null,
    Bool,
    Int(i64),
    /// An integer beyond `i64`.
    BigInt,
    Float,
    /// The string, when it was asked for.
    Str(Option<Cow<'de, str>>),
    Array,
    Object,
}

/// What a message's `params` hold that the proxy decides or checks on.
#[derive(Default)]
struct Targets<'de> {
    name: Option<Cow<'de, str>>,
    uri: Option<Cow<'de, str>>,
    /// `params.taskId` (tasks extension).
    task: Option<Cow<'de, str>>,
    /// `params._meta["io.modelcontextprotocol/protocolVersion"]` (MCP 2026-07-28).
    protocol_version: Option<Cow<'de, str>>,
    /// `params._meta.traceparent`: the caller's W3C trace context, where a client that cannot
    /// set headers puts it.
    traceparent: Option<Cow<'de, str>>,
    /// `params.task` (2025-11-25) or the tasks extension among the request's client
    /// capabilities: the answer may create a task.
    wants_task: bool,
    arguments: Option<&'de RawValue>,
}

#[derive(Clone, Copy)]
enum Target {
    Name,
    Uri,
    Task,
    ProtocolVersion,
    TraceParent,
}

/// The `_meta` key that carries a 2026-07-28 request's protocol version.
const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// The `_meta` key that carries a 2026-07-28 request's client capabilities.
const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// The tasks extension's name among the client capabilities' `extensions`.
const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";

/// What to keep of a value besides its [`Shape`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    Nothing,
    /// The string, if it is one.
    Str,
    /// The `name`, `uri` and `taskId` members and what `_meta` says, if it is an object, in
    /// [`Ctx::targets`].
    Targets,
    /// `params._meta`: the protocol version and the client capabilities.
    Meta,
    /// `_meta`'s client capabilities: their `extensions`.
    Capabilities,
    /// The client capabilities' `extensions`: whether the tasks extension is one.
    Extensions,
}

/// Validates any value: well-formed, within the depth limit, no duplicate keys. Stores only what
/// `keep` asks for.
struct ValueSeed<'c, 'de> {
    ctx: &'c mut Ctx<'de>,
    depth: usize,
    keep: Keep,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, 'de> {
    type Value = Shape<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, 'de> {
    type Value = Shape<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Shape::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Shape::Bool)
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Shape::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or(Shape::BigInt, Shape::Int))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Shape::Float)
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Shape::Str(
            (self.keep == Keep::Str).then_some(Cow::Borrowed(v)),
        ))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Shape::Str(
            (self.keep == Keep::Str).then(|| Cow::Owned(v.to_owned())),
        ))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        self.ctx.enter(self.depth)?;
        while seq
            .next_element_seed(ValueSeed {
                ctx: &mut *self.ctx,
                depth: self.depth + 1,
                keep: Keep::Nothing,
            })?
            .is_some()
        {}
        Ok(Shape::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        self.ctx.enter(self.depth)?;
        let mut keys = Keys::begin(self.ctx);
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let (target, keep) = match (self.keep, &*key) {
                (Keep::Targets, "name") => (Some(Target::Name), Keep::Str),
                (Keep::Targets, "uri") => (Some(Target::Uri), Keep::Str),
                (Keep::Targets, "taskId") => (Some(Target::Task), Keep::Str),
                (Keep::Targets, "task") => {
                    self.ctx.targets.wants_task = true;
                    (None, Keep::Nothing)
                }
                (Keep::Targets, "arguments") => {
                    keys.insert(self.ctx, key)?;
                    let raw = map.next_value_seed(ArgumentsSeed {
                        ctx: &mut *self.ctx,
                        depth: self.depth + 1,
                    })?;
                    self.ctx.targets.arguments = Some(raw);
                    continue;
                }
                (Keep::Targets, "_meta") => (None, Keep::Meta),
                (Keep::Meta, META_PROTOCOL_VERSION) => (Some(Target::ProtocolVersion), Keep::Str),
                (Keep::Meta, "traceparent") => (Some(Target::TraceParent), Keep::Str),
                (Keep::Meta, META_CLIENT_CAPABILITIES) => (None, Keep::Capabilities),
                (Keep::Capabilities, "extensions") => (None, Keep::Extensions),
                (Keep::Extensions, TASKS_EXTENSION) => {
                    self.ctx.targets.wants_task = true;
                    (None, Keep::Nothing)
                }
                _ => (None, Keep::Nothing),
            };
            keys.insert(self.ctx, key)?;
            let value = map.next_value_seed(ValueSeed {
                ctx: &mut *self.ctx,
                depth: self.depth + 1,
                keep,
            })?;
            if let (Some(target), Shape::Str(s)) = (target, value) {
                let targets = &mut self.ctx.targets;
                match target {
                    Target::Name => targets.name = s,
                    Target::Uri => targets.uri = s,
                    Target::Task => targets.task = s,
                    Target::ProtocolVersion => targets.protocol_version = s,
                    Target::TraceParent => targets.traceparent = s,
                }
            }
        }
        keys.end(self.ctx);
        Ok(Shape::Object)
    }
}

/// `params.arguments`: kept as the raw slice of the body, and validated like any other value.
struct ArgumentsSeed<'c, 'de> {
    ctx: &'c mut Ctx<'de>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ArgumentsSeed<'_, 'de> {
    type Value = &'de RawValue;

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        let raw = <&'de RawValue>::deserialize(de)?;
        // The slice was only scanned; duplicate keys, depth and surrogates are checked here, over
        // the arguments alone.
        let mut inner = serde_json::Deserializer::from_str(raw.get());
        let checked = ValueSeed {
            ctx: &mut *self.ctx,
            depth: self.depth,
            keep: Keep::Nothing,
        }
        .deserialize(&mut inner);
        if let Err(err) = checked {
            if self.ctx.failure.is_none() {
                self.ctx.failure = Some(InspectError::from_parser(raw.get().as_bytes(), err));
            }
            return Err(de::Error::custom("refused"));
        }
        Ok(raw)
    }
}

/// Refuses every JSON type but an object (and, unless told otherwise, an array).
macro_rules! refuse_non_objects {
    ($($seq:ident)?) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Err(self.ctx.fail(InspectError::NotAnObject))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(self.ctx.fail(InspectError::NotAnObject))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(self.ctx.fail(InspectError::NotAnObject))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(self.ctx.fail(InspectError::NotAnObject))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(self.ctx.fail(InspectError::NotAnObject))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(self.ctx.fail(InspectError::NotAnObject))
        }
        $(
            fn $seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
                Err(self.ctx.fail(InspectError::NotAnObject))
            }
        )?
    };
}

/// The whole body: one message or a batch.
pub(super) struct TopSeed<'c, 'de> {
    pub(super) ctx: &'c mut Ctx<'de>,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_, 'de> {
    type Value = Inspection<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_, 'de> {
    type Value = Inspection<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON-RPC message or batch")
    }

    refuse_non_objects!();

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let message = MessageSeed {
            ctx: self.ctx,
            depth: 1,
        }
        .visit_map(map)?;
        Ok(Inspection {
            batch: false,
            messages: vec![message],
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        self.ctx.enter(1)?;
        let mut messages = Vec::with_capacity(seq.size_hint().unwrap_or(4));
        while let Some(message) = seq.next_element_seed(MessageSeed {
            ctx: &mut *self.ctx,
            depth: 2,
        })? {
            messages.push(message);
        }
        if messages.is_empty() {
            return Err(self.ctx.fail(InspectError::EmptyBatch));
        }
        Ok(Inspection {
            batch: true,
            messages,
        })
    }
}

/// One JSON-RPC message object.
struct MessageSeed<'c, 'de> {
    ctx: &'c mut Ctx<'de>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_, 'de> {
    type Value = Message<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

/// The members of a message that decide what it is.
#[derive(Clone, Copy)]
enum Member {
    Jsonrpc,
    Id,
    Method,
    Params,
    Result,
    Error,
    Other,
}

impl Member {
    fn of(key: &str) -> Self {
        match key {
            "jsonrpc" => Member::Jsonrpc,
            "id" => Member::Id,
            "method" => Member::Method,
            "params" => Member::Params,
            "result" => Member::Result,
            "error" => Member::Error,
            _ => Member::Other,
        }
    }
}

#[derive(Default)]
struct Members<'de> {
    jsonrpc: Option<Shape<'de>>,
    id: Option<Shape<'de>>,
    method: Option<Shape<'de>>,
    params: Option<Shape<'de>>,
    result: bool,
    error: bool,
}

impl<'de> Visitor<'de> for MessageSeed<'_, 'de> {
    type Value = Message<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON-RPC message")
    }

    refuse_non_objects!(visit_seq);

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        self.ctx.enter(self.depth)?;
        let mut keys = Keys::begin(self.ctx);
        let mut members = Members::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let member = Member::of(&key);
            keys.insert(self.ctx, key)?;
            let value = map.next_value_seed(ValueSeed {
                ctx: &mut *self.ctx,
                depth: self.depth + 1,
                keep: match member {
                    Member::Jsonrpc | Member::Id | Member::Method => Keep::Str,
                    Member::Params => Keep::Targets,
                    Member::Result | Member::Error | Member::Other => Keep::Nothing,
                },
            })?;
            match member {
                Member::Jsonrpc => members.jsonrpc = Some(value),
                Member::Id => members.id = Some(value),
                Member::Method => members.method = Some(value),
                Member::Params => members.params = Some(value),
                Member::Result => members.result = true,
                Member::Error => members.error = true,
                Member::Other => {}
            }
        }
        keys.end(self.ctx);
        let targets = std::mem::take(&mut self.ctx.targets);
        classify(members, targets).map_err(|err| self.ctx.fail(err))
    }
}

/// Turns the members of a well-formed object into a message, or says why it is none.
fn classify<'de>(
    members: Members<'de>,
    params: Targets<'de>,
) -> Result<Message<'de>, InspectError> {
    match &members.jsonrpc {
        Some(Shape::Str(Some(v))) if v == "2.0" => {}
        _ => return Err(InspectError::BadVersion),
    }
    let method = match members.method {
        None => None,
        Some(Shape::Str(Some(m))) => Some(m),
        Some(_) => return Err(InspectError::BadMethod),
    };
    let id = match members.id {
        None => None,
        Some(Shape::Int(n)) => Some(RequestId::Number(n)),
        Some(Shape::Str(Some(s))) => Some(RequestId::String(s)),
        Some(_) => return Err(InspectError::BadId),
    };
    let kind = match (&method, members.result, members.error) {
        (Some(_), false, false) if id.is_some() => MessageKind::Request,
        (Some(_), false, false) => MessageKind::Notification,
        (Some(_), _, _) => return Err(InspectError::Ambiguous),
        (None, false, false) => return Err(InspectError::NotAMessage),
        (None, result, error) if result != error && id.is_some() => MessageKind::Response,
        (None, _, _) => return Err(InspectError::BadResponse),
    };
    // Targets are only captured from an object, so an array leaves them empty.
    match members.params {
        None | Some(Shape::Array | Shape::Object) => {}
        Some(_) => return Err(InspectError::BadParams),
    }
    let target = match method.as_deref() {
        Some("tools/call") => Some(params.name.ok_or(InspectError::MissingToolName)?),
        Some("prompts/get") => Some(params.name.ok_or(InspectError::MissingPromptName)?),
        Some("resources/read" | "resources/subscribe" | "resources/unsubscribe") => {
            Some(params.uri.ok_or(InspectError::MissingResourceUri)?)
        }
        _ => None,
    };
    Ok(Message {
        kind,
        id,
        method,
        target,
        task: params.task,
        protocol_version: params.protocol_version,
        traceparent: params.traceparent,
        wants_task: params.wants_task,
        arguments: params.arguments,
    })
}
