//! The caller's side of a streamed answer: the response head, sent once the first provider has
//! accepted the request (so an unknown model or a provider that every target refuses is still a
//! plain error response), then `chat.completion.chunk` events written as the model's text
//! arrives, through every tool round, ending in `data: [DONE]`, or in an error event when
//! something fails after the head went out. Owns the SSE the caller reads; not the conversation
//! (see `chat`) nor the provider's stream (see `stream`).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::chat::Answer;
use super::config::Target;
use super::openai;

/// Events buffered towards a slow caller before the provider's stream is no longer read: the
/// caller's pace sets the pace, and memory stays bounded.
const BUFFERED_EVENTS: usize = 32;

/// The response body of a streamed answer: whatever the relay writes, as it writes it.
pub struct ChannelBody {
    events: mpsc::Receiver<Bytes>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.events
            .poll_recv(cx)
            .map(|event| event.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// What the response head says: the target that began the answer and the targets given up on
/// before it.
#[derive(Debug)]
pub struct Head {
    pub target: Target,
    pub fallbacks: usize,
}

/// The caller went away: nothing more is worth asking a model or a tool for.
#[derive(Debug)]
pub struct Gone;

pub struct Relay {
    id: String,
    created: u64,
    include_usage: bool,
    head: Option<oneshot::Sender<Head>>,
    events: mpsc::Sender<Bytes>,
    /// The target now answering, as each chunk's `model`.
    model: String,
}

impl Relay {
    /// A relay, the receiver of its head and the body the caller reads.
    pub fn new(
        id: String,
        created: u64,
        include_usage: bool,
    ) -> (Relay, oneshot::Receiver<Head>, ChannelBody) {
        let (head, head_rx) = oneshot::channel();
        let (events, events_rx) = mpsc::channel(BUFFERED_EVENTS);
        let relay = Relay {
            id,
            created,
            include_usage,
            head: Some(head),
            events,
            model: String::new(),
        };
        (relay, head_rx, ChannelBody { events: events_rx })
    }

    /// Whether the head has gone out: from then on failures are told in the stream.
    pub fn started(&self) -> bool {
        self.head.is_none()
    }

    /// A round's stream opened at `target`: the first time, the head goes out with the role
    /// chunk.
    pub async fn start(&mut self, target: &Target, fallbacks: usize) -> Result<(), Gone> {
        self.model = target.to_string();
        let Some(head) = self.head.take() else {
            return Ok(());
        };
        head.send(Head {
            target: target.clone(),
            fallbacks,
        })
        .map_err(|_| Gone)?;
        self.chunk(json!({ "role": "assistant", "content": "" }), Value::Null)
            .await
    }

    /// Text from the model, passed on as it came.
    pub async fn text(&mut self, text: &str) -> Result<(), Gone> {
        self.chunk(json!({ "content": text }), Value::Null).await
    }

    /// The end of a finished conversation: tool calls handed back to the caller, the finish
    /// reason, the usage when asked for, `[DONE]`. The text has gone out already.
    pub async fn finish(&mut self, answer: &Answer) -> Result<(), Gone> {
        for (index, call) in answer.turn.tool_calls.iter().enumerate() {
            self.chunk(openai::tool_call_delta(index, call), Value::Null)
                .await?;
        }
        self.chunk(json!({}), json!(answer.turn.finish_reason))
            .await?;
        if self.include_usage {
            let usage = openai::usage_event(&self.id, self.created, &self.model, answer.turn.usage);
            self.send(usage).await?;
        }
        self.send(openai::DONE_EVENT.to_owned()).await
    }

    /// A failure after the head went out, as OpenAI streams one: an event holding `error`.
    /// No `[DONE]` follows, so a client cannot take the answer for complete.
    pub async fn fail(&mut self, error: Value) -> Result<(), Gone> {
        self.send(format!("data: {error}\n\n")).await
    }

    async fn chunk(&mut self, delta: Value, finish: Value) -> Result<(), Gone> {
        let event = openai::chunk_event(&self.id, self.created, &self.model, delta, finish);
        self.send(event).await
    }

    async fn send(&mut self, event: String) -> Result<(), Gone> {
        self.events.send(Bytes::from(event)).await.map_err(|_| Gone)
    }
}
