//! The body of a response the proxy writes itself: an error, the metadata document, a filtered
//! listing.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// The proxy's own bytes, sent as one frame.
///
/// A refusal sent before the request's body was read keeps that body until the refusal is
/// written. Over HTTP/2, dropping a request body that is still arriving resets the stream with
/// CANCEL before the answer goes out, and the client then never sees why it was refused; dropped
/// after the answer, the stream ends with NO_ERROR, as RFC 9113 §8.1 describes for early
/// responses.
pub struct OwnBody {
    bytes: Option<Bytes>,
    unread: Option<Incoming>,
}

impl OwnBody {
    pub fn new(bytes: Bytes) -> OwnBody {
        OwnBody {
            bytes: Some(bytes),
            unread: None,
        }
    }

    /// Holds the request's body, unless it has already ended, until this body is dropped.
    pub fn keep_until_sent(&mut self, request_body: Incoming) {
        if !request_body.is_end_stream() {
            self.unread = Some(request_body);
        }
    }
}

impl Body for OwnBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let bytes = self.get_mut().bytes.take();
        Poll::Ready(bytes.filter(|b| !b.is_empty()).map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.bytes.as_ref().is_none_or(Bytes::is_empty)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.bytes.as_ref().map_or(0, |b| b.len() as u64))
    }
}
