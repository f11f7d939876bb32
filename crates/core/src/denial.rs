//! What a policy refusal tells the client: the message, the reason, and the scopes a
//! step-up should ask for (those the call needs and those the token already holds, so a client
//! that steps up loses none). Not the decision itself (see `policy`), nor its rendering (see
//! `error`).

use crate::auth::Principal;
use crate::error::{Denied, ErrorId};
use crate::policy::{Action, Denial};
use crate::reason::Reason;

/// The client's view of `denial` of `action`.
pub fn denied(
    id: ErrorId,
    action: &Action<'_>,
    denial: &Denial<'_>,
    principal: &Principal,
) -> Denied {
    let what = match action.target {
        Some(target) => format!("{} {target:?}", action.method),
        None => action.method.to_string(),
    };
    let message = match denial.reason {
        Reason::InsufficientScope => format!(
            "{what} requires scope {}; missing {}",
            denial.required.join(" "),
            denial.missing.join(" ")
        ),
        Reason::MissingTarget => format!("{what} names no target"),
        Reason::ConditionFailed => {
            format!("{what} is not allowed for this call: a condition of its rule does not hold")
        }
        Reason::DeniedByRule => format!(
            "{what} is denied: {}",
            denial.note.as_deref().unwrap_or("denied by policy")
        ),
        Reason::ConditionError => {
            format!("{what} is not allowed: a policy condition could not be evaluated")
        }
        // `NoRule`: the policy's decisions carry no reason besides these.
        _ => format!("{what} is not allowed by policy"),
    };
    let challenge_scopes = if denial.reason == Reason::InsufficientScope {
        let mut scopes: Vec<String> = denial.required.iter().map(|s| s.to_string()).collect();
        for held in &principal.scopes {
            if is_scope_token(held) && !scopes.contains(held) {
                scopes.push(held.clone());
            }
        }
        scopes
    } else {
        Vec::new()
    };
    Denied {
        id,
        message,
        reason: denial.reason,
        method: action.method.to_string(),
        target: action.target.map(str::to_string),
        missing: denial.missing.iter().map(|s| s.to_string()).collect(),
        detail: (denial.reason == Reason::DeniedByRule)
            .then(|| denial.note.as_deref().unwrap_or_default().to_string()),
        condition: denial.audited_condition(),
        challenge_scopes,
    }
}

/// RFC 6749 §3.3 scope-token characters: a token's scope that is not one never reaches a header.
fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_tokens_exclude_quotes_and_spaces() {
        assert!(is_scope_token("customer:read"));
        assert!(!is_scope_token("a\"b"));
        assert!(!is_scope_token("a b"));
        assert!(!is_scope_token(""));
    }
}
