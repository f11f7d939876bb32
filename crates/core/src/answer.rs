//! The upstream's answer on its way back to the client: listings filtered whatever path they
//! take (an SDK server routes answers by JSON-RPC id, so one POST's listing can come back on
//! another POST's stream), task handles bound before the client can read them, and what cannot
//! be read refused rather than relayed. Not the request going up (see `upstream`), nor whether
//! it may go (see `proxy`).

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::response::Parts;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;

use crate::auth::Principal;
use crate::error::{ProxyError, error_id};
use crate::listfilter::{ListFilter, SseListBody};
use crate::mcp::RequestId;
use crate::session::Sessions;
use crate::tasks;
use crate::upstream::EndOnError;

/// What the proxy answers with: the upstream's body streamed as it comes, its own, or an SSE
/// stream with its listings filtered.
pub type ProxyBody = Either<Upstream, Either<Full<Bytes>, SseListBody<Upstream>>>;

/// The upstream's response body as the client gets it.
pub type Upstream = EndOnError<Incoming>;

/// A body the proxy wrote itself.
pub fn full(bytes: Bytes) -> ProxyBody {
    Either::Right(Either::Left(Full::new(bytes)))
}

/// What the forwarding step does with the upstream's answer.
pub struct Answer<'i> {
    /// The request's first JSON-RPC id: the id of the proxy's own error, should the answer fail
    /// (serialised only then).
    pub first_id: Option<&'i RequestId<'i>>,
    /// Filters the listings it may carry.
    pub list_filter: Option<ListFilter>,
    /// The request asked for a listing: an answer too large to filter is named a listing.
    pub asks_for_list: bool,
    /// The request takes a task for an answer: the handle is bound to its caller.
    pub binds_tasks: bool,
}

/// Bounds on what is read of an answer before it goes on.
pub struct Limits {
    pub max_bytes: usize,
    /// For the rest of an answer that is read whole, once its head has come.
    pub read_timeout: Duration,
}

/// The media types that carry JSON-RPC; anything else (a plain-text error) holds no listing.
enum Media {
    Json,
    EventStream,
    Other,
}

fn media(headers: &HeaderMap) -> Media {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = value.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("text/event-stream") {
        Media::EventStream
    } else if essence.eq_ignore_ascii_case("application/json")
        || essence
            .get(essence.len().saturating_sub(5)..)
            .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json"))
    {
        Media::Json
    } else {
        Media::Other
    }
}

/// Whether the body arrives as the upstream encoded it: compressed or partial (`206`) bytes
/// cannot be read for listings.
fn unreadable_as_sent(parts: &Parts) -> bool {
    parts.status == StatusCode::PARTIAL_CONTENT
        || parts
            .headers
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
}

/// The client's response from the upstream's, whatever its status: an error body is shown to
/// people and models too.
pub async fn deliver(
    mut parts: Parts,
    body: Upstream,
    answer: Answer<'_>,
    limits: &Limits,
    sessions: Option<&Sessions>,
    principal: &Principal,
) -> Result<Response<ProxyBody>, ProxyError> {
    let Answer {
        first_id,
        list_filter,
        asks_for_list,
        binds_tasks,
    } = answer;
    let binding = sessions.filter(|_| binds_tasks && parts.status.is_success());
    let media = media(&parts.headers);
    if (list_filter.is_none() && binding.is_none()) || matches!(media, Media::Other) {
        return Ok(Response::from_parts(parts, Either::Left(body)));
    }
    if unreadable_as_sent(&parts) {
        tracing::warn!(status = %parts.status, "upstream answer refused: it cannot be read to filter it");
        return Err(ProxyError::ListUnreadable {
            id: error_id(first_id),
        });
    }
    let event_stream = matches!(media, Media::EventStream);
    // Filtering changes the length of a body that came with one.
    parts.headers.remove(header::CONTENT_LENGTH);
    if event_stream
        && binding.is_none()
        && let Some(filter) = list_filter
    {
        let body = SseListBody::new(body, filter, limits.max_bytes);
        return Ok(Response::from_parts(
            parts,
            Either::Right(Either::Right(body)),
        ));
    }
    // A JSON answer, or one held until its task handle is bound (a task is created before it
    // is announced, so the wait is short).
    let read = Limited::new(body, limits.max_bytes).collect();
    let bytes = match tokio::time::timeout(limits.read_timeout, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) if asks_for_list => {
            return Err(ProxyError::ListTooLarge {
                id: error_id(first_id),
            });
        }
        Ok(Err(_)) => {
            return Err(ProxyError::AnswerTooLarge {
                id: error_id(first_id),
            });
        }
        Err(_) => {
            return Err(ProxyError::UpstreamTimeout {
                id: error_id(first_id),
            });
        }
    };
    if let Some(sessions) = binding {
        tasks::bind_created(sessions, &bytes, event_stream, principal)
            .await
            .map_err(|_| ProxyError::StateUnavailable {
                id: error_id(first_id),
            })?;
    }
    let filtered = match &list_filter {
        None => Ok(bytes),
        Some(filter) if event_stream => filter.filter_event_stream(&bytes, limits.max_bytes),
        Some(filter) => filter
            .filter_json(&bytes)
            .map(|changed| changed.unwrap_or(bytes)),
    };
    match filtered {
        Ok(bytes) => Ok(Response::from_parts(parts, full(bytes))),
        Err(unreadable) => {
            tracing::warn!(reason = %unreadable, "upstream answer refused: it cannot be read to filter it");
            Err(ProxyError::ListUnreadable {
                id: error_id(first_id),
            })
        }
    }
}
