//! Task handles (tasks extension, and 2025-11-25's tasks) through the proxy: bound to the
//! principal whose call created them, whichever answer shape carried them.

use super::*;

/// No `[methods]` rule for the task methods: they are protocol methods, and the handle's binding
/// is what protects a task.
const TASKS_POLICY: &str = "version = 1\n[[tools]]\nname = \"export_report\"\nscopes = []\n";

fn task_script(body: &Value) -> Reply {
    let id = body["id"].as_i64().unwrap_or(0);
    match body["method"].as_str().unwrap_or("") {
        // 2026-07-28 extension shape as JSON; 2025-11-25 shape over an event stream.
        "tools/call" if body["params"]["task"].is_object() => {
            let (events, stream) = mpsc::channel(1);
            let event = format!(
                "data: {}\n\n",
                json!({ "jsonrpc": "2.0", "id": id, "result": { "task": { "taskId": "legacy-1", "status": "working" } } })
            );
            events.try_send(Bytes::from(event)).unwrap();
            Reply::Stream(stream)
        }
        "tools/call" => ok(
            id,
            json!({ "resultType": "task", "taskId": "task-1", "status": "working", "ttlMs": 60000 }),
        ),
        _ => ok(
            id,
            json!({ "resultType": "complete", "taskId": body["params"]["taskId"], "status": "working" }),
        ),
    }
}

#[tokio::test]
async fn a_task_handle_belongs_to_the_principal_whose_call_created_it() {
    let (t, upstream) = system(Arc::new(task_script), Some(TASKS_POLICY)).await;
    let alice = t.token(&[]);
    let bob = t.token_with(&[], |claims| claims["sub"] = json!("bob"));
    let mut call = request(
        1,
        "tools/call",
        json!({ "name": "export_report", "arguments": {} }),
    );
    call = call.replace(
        "\"io.modelcontextprotocol/clientCapabilities\":{}",
        "\"io.modelcontextprotocol/clientCapabilities\":{\"extensions\":{\"io.modelcontextprotocol/tasks\":{}}}",
    );
    assert!(call.contains("io.modelcontextprotocol/tasks"));
    let call_headers = [
        ("mcp-protocol-version", VERSION),
        ("mcp-method", "tools/call"),
        ("mcp-name", "export_report"),
    ];
    let (status, _, created) =
        read(post(&t, &alice, call, &call_headers).send().await.unwrap()).await;
    assert_eq!(
        (status, created["result"]["taskId"].as_str()),
        (200, Some("task-1"))
    );

    for method in ["tasks/get", "tasks/update", "tasks/cancel"] {
        // Mcp-Name repeats the task handle for these methods.
        let headers = [
            ("mcp-protocol-version", VERSION),
            ("mcp-method", method),
            ("mcp-name", "task-1"),
        ];
        let body = || request(5, method, json!({ "taskId": "task-1" }));
        let before = upstream.requests();
        let (status, _, answer) =
            read(post(&t, &bob, body(), &headers).send().await.unwrap()).await;
        assert_eq!(status, 404, "{method} by another principal: {answer}");
        assert_eq!(answer["error"]["data"]["reason"], "task_not_found");
        assert_eq!(answer["error"]["code"], -32602);
        assert_eq!(answer["id"], 5);
        assert_eq!(
            upstream.requests(),
            before,
            "{method}: reached the upstream"
        );
        let (status, _, answer) =
            read(post(&t, &alice, body(), &headers).send().await.unwrap()).await;
        assert_eq!(status, 200, "{method} by its creator: {answer}");
        assert_eq!(upstream.requests(), before + 1);
    }
    // A handle the proxy never saw created is nobody's.
    let headers = [
        ("mcp-protocol-version", VERSION),
        ("mcp-method", "tasks/get"),
    ];
    let body = request(6, "tasks/get", json!({ "taskId": "task-2" }));
    let (status, _, _) = read(post(&t, &alice, body, &headers).send().await.unwrap()).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_mcp_name_that_is_not_the_task_handle_is_a_header_mismatch() {
    let (t, upstream) = system(Arc::new(task_script), Some(TASKS_POLICY)).await;
    let alice = t.token(&[]);
    let headers = [
        ("mcp-protocol-version", VERSION),
        ("mcp-method", "tasks/get"),
        ("mcp-name", "task-9"),
    ];
    let body = request(7, "tasks/get", json!({ "taskId": "task-1" }));
    let (status, _, answer) = read(post(&t, &alice, body, &headers).send().await.unwrap()).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], -32020);
    assert_eq!(answer["id"], 7);
    assert_eq!(upstream.requests(), 0);
}

#[tokio::test]
async fn listing_tasks_still_needs_a_methods_rule() {
    // tasks/list names no handle, so no binding guards it: an upstream would list every
    // principal's tasks.
    let (t, upstream) = system(Arc::new(task_script), Some(TASKS_POLICY)).await;
    let alice = t.token(&[]);
    let headers = [
        ("mcp-protocol-version", VERSION),
        ("mcp-method", "tasks/list"),
    ];
    let body = request(8, "tasks/list", json!({}));
    let (status, _, answer) = read(post(&t, &alice, body, &headers).send().await.unwrap()).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["error"]["data"]["reason"], "no_rule", "{answer}");
    assert_eq!(upstream.requests(), 0);
}

#[tokio::test]
async fn a_2025_11_25_task_created_over_an_event_stream_is_bound_too() {
    let (t, upstream) = system(Arc::new(task_script), Some(TASKS_POLICY)).await;
    let alice = t.token(&[]);
    let bob = t.token_with(&[], |claims| claims["sub"] = json!("bob"));
    let call = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": { "name": "export_report", "arguments": {}, "task": { "ttl": 60000 } } });
    let response = t.post(Some(&alice), call.to_string()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("legacy-1"));
    let result = |id: i64| {
        json!({ "jsonrpc": "2.0", "id": id, "method": "tasks/result", "params": { "taskId": "legacy-1" } }).to_string()
    };
    let before = upstream.requests();
    let (status, _, answer) = read(t.post(Some(&bob), result(2)).send().await.unwrap()).await;
    assert_eq!(
        (status, answer["error"]["data"]["reason"].as_str()),
        (404, Some("task_not_found"))
    );
    assert_eq!(upstream.requests(), before);
    let (status, _, _) = read(t.post(Some(&alice), result(3)).send().await.unwrap()).await;
    assert_eq!(status, 200);
}
