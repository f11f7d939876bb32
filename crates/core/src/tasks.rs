//! Task handles (the MCP tasks extension, and 2025-11-25's tasks): which requests name one, and
//! which upstream answers create one. A handle belongs to the principal whose call created it,
//! exactly as a session does, and is kept in the same store ([`Sessions`], kind [`Kind::Task`]);
//! this module only reads the messages and asks that store.

use serde_json::Value;

use crate::auth::Principal;
use crate::error::ProxyError;
use crate::mcp::{Inspection, MessageKind};
use crate::session::{Binding, Kind, Sessions};
use crate::sse::Decoder;
use crate::state::Unavailable;

/// The methods that act on the task their `params.taskId` names: `tasks/get`, `tasks/update`,
/// `tasks/cancel`, and 2025-11-25's `tasks/result`.
fn acts_on_task(method: &str) -> bool {
    method.starts_with("tasks/")
}

/// Refuses a request that names a task another principal created, or one the proxy never saw
/// created: to the caller it does not exist (`404`, as for a session), whatever the policy says.
pub async fn check(
    sessions: &Sessions,
    inspection: &Inspection<'_>,
    principal: &Principal,
) -> Result<(), ProxyError> {
    for message in &inspection.messages {
        let (MessageKind::Request, Some(method), Some(task)) = (
            message.kind,
            message.method.as_deref(),
            message.task.as_deref(),
        ) else {
            continue;
        };
        if !acts_on_task(method) {
            continue;
        }
        let id = || crate::error::error_id(message.id.as_ref());
        match sessions.check(Kind::Task, Some(task), principal).await {
            Ok(Binding::Foreign) => return Err(ProxyError::TaskNotFound { id: id() }),
            Ok(_) => {}
            Err(Unavailable) => return Err(ProxyError::StateUnavailable { id: id() }),
        }
    }
    Ok(())
}

/// Whether the answer to this body may create a task, so it is read before it is relayed.
pub fn may_create(inspection: &Inspection<'_>) -> bool {
    inspection
        .messages
        .iter()
        .any(|message| message.kind == MessageKind::Request && message.wants_task)
}

/// Binds every task an upstream answer creates to `principal`. The answer is the whole body, JSON
/// or an event stream; what cannot be read binds nothing, so a handle in it is refused later
/// rather than left open to every caller. `Err` when a handle could not be bound for want of
/// the shared store (`on_error = "deny"`): the answer must not reach the caller then.
pub async fn bind_created(
    sessions: &Sessions,
    answer: &[u8],
    event_stream: bool,
    principal: &Principal,
) -> Result<(), Unavailable> {
    let mut handles = Vec::new();
    if event_stream {
        let mut decoder = Decoder::new(answer.len().max(1));
        decoder.push(answer);
        while let Ok(Some(event)) = decoder.next_event() {
            if let Some(data) = event.data.as_deref() {
                created(data.as_bytes(), &mut handles);
            }
        }
    } else {
        created(answer, &mut handles);
    }
    for handle in handles {
        sessions.bind(Kind::Task, &handle, principal).await?;
    }
    Ok(())
}

/// The task handles one JSON body (a message or a batch) creates: `result.taskId` of a result
/// whose `resultType` is `"task"` (tasks extension), or `result.task.taskId` (2025-11-25).
fn created(body: &[u8], handles: &mut Vec<String>) {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let messages = match &value {
        Value::Array(messages) => messages.as_slice(),
        message => std::slice::from_ref(message),
    };
    for message in messages {
        let result = &message["result"];
        let handle = if result["resultType"] == "task" {
            result["taskId"].as_str()
        } else {
            result["task"]["taskId"].as_str()
        };
        if let Some(handle) = handle {
            handles.push(handle.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handles(body: &str) -> Vec<String> {
        let mut found = Vec::new();
        created(body.as_bytes(), &mut found);
        found
    }

    #[test]
    fn both_revisions_of_a_created_task_are_found_and_nothing_else() {
        assert_eq!(
            handles(
                r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"task","taskId":"t1","status":"working"}}"#
            ),
            ["t1"]
        );
        assert_eq!(
            handles(r#"[{"jsonrpc":"2.0","id":1,"result":{"task":{"taskId":"t2"}}}]"#),
            ["t2"]
        );
        assert!(
            handles(r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","taskId":"t3"}}"#)
                .is_empty()
        );
        assert!(handles(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#).is_empty());
        assert!(handles("not json").is_empty());
    }
}
