//! Why a request was refused: one closed set of reasons for every refusal the proxy makes (the
//! request's HTTP shape, the JSON-RPC inspection, the token, the policy, the upstream). The same
//! [`Reason::as_str`] names the reason in the client's error body, the `reason` label of the
//! metrics and the audit line, so the three cannot drift, and [`Reason::ALL`] is every label
//! value the metrics start at zero.

macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident => $label:literal,)+) => {
        /// Why a request was refused. See the module documentation.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[$doc])* $variant,)+
        }

        impl Reason {
            /// Every reason, in declaration order (`ALL[r.index()] == r`).
            pub const ALL: [Reason; [$(Reason::$variant),+].len()] = [$(Reason::$variant),+];

            /// The snake_case name clients, dashboards and audit readers see.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $label,)+
                }
            }
        }
    };
}

reasons! {
    // ---- the request's HTTP shape ----------------------------------------------------------
    NotFound => "not_found",
    MethodNotAllowed => "method_not_allowed",
    OriginNotAllowed => "origin_not_allowed",
    UnsupportedMediaType => "unsupported_media_type",
    BodyTooLarge => "body_too_large",
    BodyRead => "body_read",
    BodyTimeout => "body_timeout",
    HeaderMismatch => "header_mismatch",
    RepeatedHeader => "repeated_header",
    SessionNotFound => "session_not_found",
    TaskNotFound => "task_not_found",
    Overloaded => "overloaded",
    RateLimited => "rate_limited",
    /// A tool whose definition no longer matches its pin (`[integrity]`).
    ToolChanged => "tool_changed",
    /// The shared state (`[state]` on Redis) cannot be reached and `on_error = "deny"`.
    StateUnavailable => "state_unavailable",
    // ---- the JSON-RPC inspection -----------------------------------------------------------
    Bom => "bom",
    InvalidUtf8 => "invalid_utf8",
    LoneSurrogate => "lone_surrogate",
    Syntax => "syntax",
    TrailingData => "trailing_data",
    TooDeep => "too_deep",
    DuplicateKey => "duplicate_key",
    NotJsonrpc => "not_jsonrpc",
    EmptyBatch => "empty_batch",
    BadVersion => "bad_version",
    BadMethod => "bad_method",
    BadId => "bad_id",
    AmbiguousMessage => "ambiguous_message",
    BadResponse => "bad_response",
    BadParams => "bad_params",
    MissingToolName => "missing_tool_name",
    MissingPromptName => "missing_prompt_name",
    MissingResourceUri => "missing_resource_uri",
    // ---- the token -------------------------------------------------------------------------
    MissingToken => "missing_token",
    Malformed => "malformed",
    MultipleAuthorization => "multiple_authorization",
    TokenTooLarge => "token_too_large",
    Expired => "expired",
    NotYetValid => "not_yet_valid",
    BadSignature => "bad_signature",
    WrongIssuer => "wrong_issuer",
    WrongAudience => "wrong_audience",
    MissingClaim => "missing_claim",
    UnknownKey => "unknown_key",
    AlgorithmNotAllowed => "algorithm_not_allowed",
    KeyMismatch => "key_mismatch",
    CritHeader => "crit_header",
    BadTyp => "bad_typ",
    Inactive => "inactive",
    InvalidDpopProof => "invalid_dpop_proof",
    NotDpopBound => "not_dpop_bound",
    BoundTokenAsBearer => "bound_token_as_bearer",
    DpopRequired => "dpop_required",
    DpopNotAccepted => "dpop_not_accepted",
    UnsupportedBinding => "unsupported_binding",
    /// A certificate-bound token (RFC 8705) on a connection without a client certificate.
    NoClientCertificate => "no_client_certificate",
    /// A certificate-bound token on a connection with another client certificate.
    CertificateMismatch => "certificate_mismatch",
    UseDpopNonce => "use_dpop_nonce",
    /// The introspection endpoint cannot be asked: a 503, since the token may be fine.
    IntrospectionUnavailable => "introspection_unavailable",
    /// The IdP's keys cannot be had: a 503, since the token may be fine.
    KeysUnavailable => "keys_unavailable",
    // ---- the policy ------------------------------------------------------------------------
    NoRule => "no_rule",
    InsufficientScope => "insufficient_scope",
    MissingTarget => "missing_target",
    ConditionFailed => "condition_failed",
    DeniedByRule => "denied_by_rule",
    ConditionError => "condition_error",
    // ---- the upstream's answer -------------------------------------------------------------
    UpstreamUnreachable => "upstream_unreachable",
    UpstreamTimeout => "upstream_timeout",
    ListTooLarge => "list_too_large",
    ListUnreadable => "list_unreadable",
    AnswerTooLarge => "answer_too_large",
}

impl Reason {
    /// Whether the token was refused (`scopegate_auth_failures_total` counts these): the
    /// variants from `MissingToken` to `KeysUnavailable`, declared together.
    pub const fn is_token(self) -> bool {
        let at = self as usize;
        at >= Reason::MissingToken as usize && at <= Reason::KeysUnavailable as usize
    }

    /// The position in [`Reason::ALL`]: an index into per-reason arrays (metric handles).
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Reason;

    #[test]
    fn every_reason_has_its_own_snake_case_name_and_index() {
        let mut seen = std::collections::HashSet::new();
        for (i, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
            let name = reason.as_str();
            assert!(seen.insert(name), "{name} named twice");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name} is not snake_case"
            );
        }
    }
}
