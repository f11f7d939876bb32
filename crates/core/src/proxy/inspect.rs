//! The inspect step of the pipeline: a POST body read as JSON-RPC, the headers held to what it
//! says, and the checks that come before the policy (a task handle's owner, a tool's pin). Not
//! how the body was read, nor whether the policy allows it (`authorize`).

use bytes::Bytes;
use http::HeaderMap;

use crate::auth::Principal;
use crate::ctx::Ctx;
use crate::error::ProxyError;
use crate::http_checks::check_mcp_headers;
use crate::listfilter::LIST_METHODS;
use crate::mcp::{self, Inspection, MessageKind};
use crate::tasks;

use super::Proxy;

impl Proxy {
    /// The body's messages, once every check before the policy has passed.
    pub(super) async fn inspect<'b>(
        &self,
        headers: &HeaderMap,
        body: &'b Bytes,
        principal: &Principal,
        ctx: &mut Ctx,
    ) -> Result<Inspection<'b>, ProxyError> {
        let inspection = mcp::inspect(body, &self.inspect_limits)
            .map_err(|error| ProxyError::Malformed { error })?;
        if let Some(trace) = ctx.trace() {
            trace.observe(&inspection);
        }
        check_mcp_headers(headers, &inspection, body, &self.param_headers)?;
        // Like a session: another principal's task is unknown to this one, whatever the
        // policy would say, and costs it no rate-limit token.
        if let Some(sessions) = &self.sessions {
            tasks::check(sessions, &inspection, principal).await?;
        }
        // A changed tool is refused before the policy is asked, so the call costs its caller
        // no rate-limit token: no scope could let it through.
        if let Some(integrity) = &self.integrity {
            integrity.check(&inspection).await?;
        }
        Ok(inspection)
    }
}

/// Whether the body asks for a listing: an answer too large to filter is then named a listing.
pub(super) fn asks_for_list(inspection: &Inspection<'_>) -> bool {
    inspection.messages.iter().any(|message| {
        message.kind == MessageKind::Request
            && message
                .method
                .as_deref()
                .is_some_and(|m| LIST_METHODS.contains(&m))
    })
}
