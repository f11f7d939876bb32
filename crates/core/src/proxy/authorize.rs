//! The authorize step of the pipeline: every JSON-RPC message of an inspected body decided by the
//! policy for the caller's token, rate limits taken only once the whole body is allowed. It
//! returns what the next steps need ([`Authorization`]) and writes nowhere. Not how the body
//! was read or where it goes next.

use std::sync::Arc;

use crate::auth::Principal;
use crate::error::{ProxyError, error_id};
use crate::mcp::{Inspection, MessageKind, RequestId};
use crate::policy::{Action, Arguments, Decision, Facts, Mode, PolicyState, RateLimit, RuleRef};
use crate::ratelimit::Refused;
use crate::reason::Reason;

use super::Proxy;

/// What the authorize step hands on: to the request's record, the policy that decided and the
/// first message it decided; to forwarding, the outcome.
pub(super) struct Authorization<'i> {
    /// The policy that decided: the list filter, the rule names and counters, and the audit
    /// line's hash all come from this one, not from one a reload swapped in since.
    pub policy: Arc<PolicyState>,
    /// The first message decided (method, target, rule index): it names the request.
    pub first: Option<(&'i str, Option<&'i str>, Option<usize>)>,
    /// How many messages were decided.
    pub messages: usize,
    pub result: Result<Allowed, ProxyError>,
}

/// The body may go on.
pub(super) struct Allowed {
    /// A rule in audit (shadow) mode would have refused: its reason, the missing scopes and
    /// the deciding condition, for the audit line.
    pub would_deny: Option<(Reason, Vec<String>, Option<String>)>,
    /// A rate limit in audit mode was exceeded: the index of its rule.
    pub would_rate_limit: Option<usize>,
    /// Tokens taken from enforced rate limits.
    pub limits_taken: usize,
}

impl Proxy {
    /// Every message of the body is decided; one denial refuses the whole body, since the
    /// upstream would run every element of a batch. Rate limits are counted only once the whole
    /// body is allowed, so a refused batch costs its caller nothing.
    pub(super) async fn authorize<'i>(
        &self,
        principal: &Principal,
        inspection: &'i Inspection<'i>,
    ) -> Authorization<'i> {
        let policy = self.policy.load_full();
        let mut first = None;
        let mut messages = 0;
        let result = decide_all(&policy, principal, inspection, &mut first, &mut messages);
        let result = match result {
            Ok((would_deny, limited)) => self.take_limits(principal, limited, would_deny).await,
            Err(error) => Err(error),
        };
        Authorization {
            policy,
            first,
            messages,
            result,
        }
    }

    /// Enforced limits are taken all or none, so that a batch refused for one call costs its
    /// caller nothing for the others; shadowed ones only report what they would have done.
    async fn take_limits(
        &self,
        principal: &Principal,
        limited: Vec<(RuleRef<'_>, RateLimit, Option<&RequestId<'_>>)>,
        would_deny: Option<(Reason, Vec<String>, Option<String>)>,
    ) -> Result<Allowed, ProxyError> {
        let mut allowed = Allowed {
            would_deny,
            would_rate_limit: None,
            limits_taken: 0,
        };
        if limited.is_empty() {
            return Ok(allowed);
        }
        let subject = principal
            .subject
            .as_deref()
            .or(principal.client_id.as_deref())
            .unwrap_or("");
        let (enforced, shadowed): (Vec<_>, Vec<_>) = limited
            .into_iter()
            .partition(|(rule, ..)| rule.mode != Mode::Audit);
        let wants: Vec<(&str, RateLimit, u32)> = enforced
            .iter()
            .map(|(rule, limit, _)| (rule.name, *limit, 1))
            .collect();
        match self.limiter.take_all(subject, &wants).await {
            Ok(()) => allowed.limits_taken = wants.len(),
            Err(Refused::Short(index, retry_after)) => {
                let (rule, _, id) = &enforced[index];
                return Err(ProxyError::RateLimited {
                    id: error_id(*id),
                    rule: rule.name.to_string(),
                    rule_index: rule.index,
                    retry_after,
                });
            }
            Err(Refused::Unavailable) => {
                let id = enforced.first().and_then(|(_, _, id)| *id);
                return Err(ProxyError::StateUnavailable { id: error_id(id) });
            }
        }
        for (rule, limit, _) in shadowed {
            // A shadowed limit only reports: a store that is away costs it nothing.
            if let Err(Refused::Short(..)) = self.limiter.take(subject, rule.name, limit).await {
                allowed.would_rate_limit.get_or_insert(rule.index);
            }
        }
        Ok(allowed)
    }
}

/// A shadowed denial, for the audit line; and the rate limits an allowed body takes.
type Decided<'p, 'i> = (
    Option<(Reason, Vec<String>, Option<String>)>,
    Vec<(RuleRef<'p>, RateLimit, Option<&'i RequestId<'i>>)>,
);

/// Decides each message in turn; the first enforced denial refuses the body.
fn decide_all<'p, 'i>(
    policy: &'p PolicyState,
    principal: &Principal,
    inspection: &'i Inspection<'i>,
    first: &mut Option<(&'i str, Option<&'i str>, Option<usize>)>,
    messages: &mut usize,
) -> Result<Decided<'p, 'i>, ProxyError> {
    let scopes = policy
        .policy
        .granted(&principal.granted, &principal.granted_cache);
    let mut would_deny = None;
    let mut limited = Vec::new();
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
        let decision = policy.policy.decide_with(&scopes, &action, &facts);
        let rule = match &decision {
            Decision::Allow { rule } => *rule,
            Decision::Deny(denial) => denial.rule,
        };
        *messages += 1;
        if first.is_none() {
            *first = Some((method, action.target, rule.map(|r| r.index)));
        }
        match decision {
            Decision::Allow { rule } => {
                if let Some(rule) = rule
                    && let Some(limit) = rule.rate_limit
                {
                    limited.push((rule, limit, message.id.as_ref()));
                }
            }
            Decision::Deny(denial) if denial.mode == Mode::Audit => {
                let missing = denial.missing.iter().map(|s| s.to_string()).collect();
                would_deny = Some((denial.reason, missing, denial.audited_condition()));
            }
            Decision::Deny(denial) => {
                return Err(ProxyError::Forbidden(Box::new(crate::denial::denied(
                    error_id(message.id.as_ref()),
                    &action,
                    &denial,
                    principal,
                ))));
            }
        }
    }
    Ok((would_deny, limited))
}
