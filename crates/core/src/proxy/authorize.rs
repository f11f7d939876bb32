//! The authorize step of the pipeline: every JSON-RPC message of an inspected body decided by the
//! policy for the caller's token, rate limits taken only once the whole body is allowed, and the
//! outcome recorded on the request's context. Not how the body was read or where it goes next.

use crate::audit::Ctx;
use crate::auth::Principal;
use crate::error::ProxyError;
use crate::mcp::{Inspection, MessageKind, RequestId};
use crate::policy::{Action, Arguments, Decision, Facts, Mode, RateLimit, RuleRef};
use crate::ratelimit::Refused;

use super::Proxy;

impl Proxy {
    /// Every message of the body is decided; one denial refuses the whole body, since the
    /// upstream would run every element of a batch. Rate limits are counted only once the whole
    /// body is allowed, so a refused batch costs its caller nothing.
    pub(super) async fn authorize(
        &self,
        principal: &Principal,
        inspection: &Inspection<'_>,
        ctx: &mut Ctx,
    ) -> Result<(), ProxyError> {
        let state = self.policy.load();
        let scopes = state
            .policy
            .granted(&principal.granted, &principal.granted_cache);
        let mut limited: Vec<(RuleRef<'_>, RateLimit, Option<&RequestId<'_>>)> = Vec::new();
        for message in &inspection.messages {
            // A response answers the server's own request (sampling, elicitation): nothing to
            // authorize beyond the token.
            let (MessageKind::Request | MessageKind::Notification, Some(method)) =
                (message.kind, message.method.as_deref())
            else {
                continue;
            };
            let action = Action {
                method,
                target: message.target.as_deref(),
            };
            let facts = Facts {
                claims: &principal.claims,
                claims_cache: &principal.claims_cache,
                arguments: Arguments::Raw(message.arguments),
            };
            match state.policy.decide_with(&scopes, &action, &facts) {
                Decision::Allow { rule } => {
                    ctx.saw(method, action.target, rule.map(|r| r.name));
                    if let Some(rule) = rule
                        && let Some(limit) = rule.rate_limit
                    {
                        limited.push((rule, limit, message.id.as_ref()));
                    }
                }
                Decision::Deny(denial) => {
                    ctx.saw(method, action.target, denial.rule.map(|r| r.name));
                    if denial.mode == Mode::Audit {
                        ctx.would_deny(&denial);
                        continue;
                    }
                    let id = message
                        .id
                        .as_ref()
                        .and_then(|id| serde_json::to_value(id).ok());
                    return Err(ProxyError::Forbidden(Box::new(crate::denial::denied(
                        id, &action, &denial, principal,
                    ))));
                }
            }
        }
        if limited.is_empty() {
            ctx.allowed();
            return Ok(());
        }
        let subject = principal
            .subject
            .as_deref()
            .or(principal.client_id.as_deref())
            .unwrap_or("");
        // Enforced limits are taken all or none, so that a batch refused for one call costs its
        // caller nothing for the others; shadowed ones only report what they would have done.
        let (enforced, shadowed): (Vec<_>, Vec<_>) = limited
            .into_iter()
            .partition(|(rule, ..)| rule.mode != Mode::Audit);
        let wants: Vec<(&str, RateLimit, u32)> = enforced
            .iter()
            .map(|(rule, limit, _)| (rule.name, *limit, 1))
            .collect();
        match self.limiter.take_all(subject, &wants).await {
            Ok(()) => {}
            Err(Refused::Short(index, retry_after)) => {
                let (rule, _, id) = &enforced[index];
                return Err(ProxyError::RateLimited {
                    id: id.and_then(|id| serde_json::to_value(id).ok()),
                    rule: rule.name.to_string(),
                    retry_after,
                });
            }
            Err(Refused::Unavailable) => {
                let id = enforced.first().and_then(|(_, _, id)| *id);
                return Err(ProxyError::StateUnavailable {
                    id: id.and_then(|id| serde_json::to_value(id).ok()),
                });
            }
        }
        for (rule, limit, _) in shadowed {
            // A shadowed limit only reports: a store that is away costs it nothing.
            if let Err(Refused::Short(..)) = self.limiter.take(subject, rule.name, limit).await {
                ctx.would_rate_limit();
            }
        }
        ctx.allowed();
        Ok(())
    }
}
