//! The MCP methods scopegate knows (2025-11-25, 2026-07-28 and its tasks extension) and what the
//! proxy needs to know of each: one table, read by the policy (which methods need only a valid
//! token), the policy linter (which `[methods]` keys are real) and the metrics (which methods get
//! their own label), instead of a list in each.

/// How the proxy treats a known method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Needs only a valid token unless a `[methods]` rule names it: the session handshake,
    /// keep-alive, listings (names only; calling still needs a rule), the change stream, and the
    /// methods that act on one task handle (the call that created the task was authorized, and
    /// the handle is bound to its creator like a session, so another principal's is unknown to
    /// them; `tasks/list` names no handle and is guarded).
    Protocol,
    /// A client request that needs a rule.
    Guarded,
    /// A client notification: carries no result, so it is a protocol message too.
    Notification,
    /// Sent by the server to the client; seen in answers, labelled in metrics only.
    FromServer,
}

/// One known method.
#[derive(Debug, Clone, Copy)]
pub struct Method {
    pub name: &'static str,
    pub kind: Kind,
}

const fn method(name: &'static str, kind: Kind) -> Method {
    Method { name, kind }
}

/// Every method scopegate knows by name.
pub const METHODS: [Method; 25] = [
    method("initialize", Kind::Protocol),
    method("server/discover", Kind::Protocol),
    method("subscriptions/listen", Kind::Protocol),
    method("ping", Kind::Protocol),
    method("tools/list", Kind::Protocol),
    method("tools/call", Kind::Guarded),
    method("resources/list", Kind::Protocol),
    method("resources/templates/list", Kind::Protocol),
    method("resources/read", Kind::Guarded),
    method("resources/subscribe", Kind::Guarded),
    method("resources/unsubscribe", Kind::Guarded),
    method("prompts/list", Kind::Protocol),
    method("prompts/get", Kind::Guarded),
    method("completion/complete", Kind::Guarded),
    method("logging/setLevel", Kind::Guarded),
    method("tasks/get", Kind::Protocol),
    method("tasks/update", Kind::Protocol),
    method("tasks/cancel", Kind::Protocol),
    method("tasks/result", Kind::Protocol),
    method("tasks/list", Kind::Guarded),
    method("notifications/initialized", Kind::Notification),
    method("notifications/cancelled", Kind::Notification),
    method("notifications/progress", Kind::Notification),
    method("notifications/roots/list_changed", Kind::Notification),
    method("sampling/createMessage", Kind::FromServer),
];

/// Every `notifications/…` method is a notification, known by name or not.
const NOTIFICATION_PREFIX: &str = "notifications/";

/// The table's entry for `name`.
pub fn find(name: &str) -> Option<&'static Method> {
    position(name).map(|at| &METHODS[at])
}

/// Where `name` is in [`METHODS`].
pub fn position(name: &str) -> Option<usize> {
    METHODS.iter().position(|known| known.name == name)
}

/// Whether `name` needs only a valid token when no `[methods]` rule names it.
pub fn is_protocol(name: &str) -> bool {
    name.starts_with(NOTIFICATION_PREFIX)
        || find(name).is_some_and(|known| known.kind == Kind::Protocol)
}

/// Whether `name` is a request a client sends a server (not a notification).
pub fn is_client_request(name: &str) -> bool {
    find(name).is_some_and(|known| matches!(known.kind, Kind::Protocol | Kind::Guarded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_is_named_once() {
        for (i, known) in METHODS.iter().enumerate() {
            assert!(
                METHODS[..i]
                    .iter()
                    .all(|earlier| earlier.name != known.name),
                "{} twice",
                known.name
            );
        }
    }

    #[test]
    fn handshakes_listings_and_notifications_are_protocol_methods_and_calls_are_not() {
        for name in [
            "initialize",
            "server/discover",
            "tools/list",
            "notifications/anything",
        ] {
            assert!(is_protocol(name), "{name}");
        }
        for name in [
            "tools/call",
            "prompts/get",
            "tasks/list",
            "sampling/createMessage",
            "x",
        ] {
            assert!(!is_protocol(name), "{name}");
        }
        assert!(is_client_request("tasks/cancel"));
        assert!(!is_client_request("notifications/initialized"));
        assert!(!is_client_request("sampling/createMessage"));
    }
}
