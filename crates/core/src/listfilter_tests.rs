use super::*;
use crate::policy::Policy;
use http_body_util::{BodyExt, StreamBody};
use serde_json::{Value, json};

fn filter(scopes: &[&str]) -> ListFilter {
    let policy = Policy::parse(
        "version = 1\n[[tools]]\nname = \"read\"\nscopes = [\"r\"]\n[[tools]]\nname = \"write\"\nscopes = [\"w\"]\n[[tools]]\nname = \"shadow\"\nscopes = [\"s\"]\nmode = \"audit\"\n[methods]\n\"resources/read\" = { scopes = [\"r\"] }\n",
        "p.toml",
    )
    .unwrap();
    let state = Arc::new(PolicyState {
        policy,
        metadata_document: Bytes::new(),
        counters: Default::default(),
    });
    ListFilter::new(Arc::new(crate::auth::Principal::with_scopes(scopes)), state)
}

const LISTING: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read","inputSchema":{"type":"object","properties":{"zeta":{"type":"number"},"alpha":{"type":"string"}}},"x":1.50},{"name":"write"},{"name":"shadow"},{"name":"unknown"}],"nextCursor":"abc"}}"#;

fn names(body: &[u8]) -> Vec<String> {
    let value: Value = serde_json::from_slice(body).unwrap();
    value["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn json_listing_keeps_only_callable_tools_byte_for_byte() {
    let out = filter(&["r"])
        .filter_json(LISTING.as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(names(&out), ["read", "shadow"]);
    // Everything kept is the upstream's own bytes: key order (zeta before alpha), number forms.
    let expected = LISTING
        .replace(r#",{"name":"write"}"#, "")
        .replace(r#",{"name":"unknown"}"#, "");
    assert_eq!(std::str::from_utf8(&out).unwrap(), expected);
}

#[test]
fn an_answer_is_filtered_whatever_its_id() {
    // `1.0` answers request `1` for JavaScript and Python clients; a replayed answer on a resumed
    // stream matches no request the proxy saw; a string id; no id match is needed at all.
    for id in ["1.0", "1e0", "7", "\"1\"", "null"] {
        let body = LISTING.replace(r#""id":1"#, &format!(r#""id":{id}"#));
        let out = filter(&["w"]).filter_json(body.as_bytes()).unwrap();
        assert_eq!(names(&out.expect(id)), ["write", "shadow"], "{id}");
    }
}

#[test]
fn every_message_of_a_batch_and_every_list_field_is_filtered() {
    let body = format!(
        r#"[{LISTING},{{"jsonrpc":"2.0","id":2,"result":{{"resources":[{{"uri":"file:///a"}}],"prompts":[{{"name":"p"}}]}}}}]"#
    );
    let out = filter(&[]).filter_json(body.as_bytes()).unwrap().unwrap();
    let value: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(value[0]["result"]["tools"], json!([{ "name": "shadow" }]));
    assert_eq!(value[1]["result"]["resources"], json!([]));
    assert_eq!(value[1]["result"]["prompts"], json!([]));
}

#[test]
fn requests_and_other_answers_pass_untouched() {
    let call = r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"hi"}]}}"#;
    assert_eq!(filter(&[]).filter_json(call.as_bytes()), Ok(None));
    let everything = filter(&["r", "w"]);
    let shadowless = LISTING.replace(r#",{"name":"unknown"}"#, "");
    assert_eq!(everything.filter_json(shadowless.as_bytes()), Ok(None));
    let request = r#"{"jsonrpc":"2.0","id":4,"method":"x","params":{"tools":[{"name":"write"}]}}"#;
    assert_eq!(filter(&[]).filter_json(request.as_bytes()), Ok(None));
}

#[test]
fn an_answer_without_a_listing_word_is_only_checked_to_be_json() {
    let call = r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"{\"plan\":\"pro\"}"}]}}"#;
    assert!(!may_hold_listing(call.as_bytes()));
    assert_eq!(filter(&[]).filter_json(call.as_bytes()), Ok(None));
    for garbage in [&call[..call.len() - 1], "{\"id\":1} trailing", "\u{feff}{}"] {
        assert!(!may_hold_listing(garbage.as_bytes()));
        assert!(
            filter(&[]).filter_json(garbage.as_bytes()).is_err(),
            "{garbage}"
        );
    }
    // Each listing name, however it is spelled, takes the full path.
    for (from, to) in [
        (r#""tools":"#, r#""tools":"#),
        (r#""tools":"#, r#""prompts":"#),
        (r#""tools":"#, r#""resources":"#),
        (r#""tools":"#, r#""t\u006fols":"#),
        (r#""tools":"#, r#""\u0074ools":"#),
    ] {
        assert!(
            may_hold_listing(LISTING.replace(from, to).as_bytes()),
            "{to}"
        );
    }
}

#[test]
fn an_escaped_member_name_is_the_same_member() {
    for spelled in [r#""t\u006fols":"#, r#""\u0074\u006f\u006f\u006c\u0073":"#] {
        let body = LISTING.replace(r#""tools":"#, spelled);
        let out = filter(&["r"])
            .filter_json(body.as_bytes())
            .unwrap()
            .unwrap();
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["result"]["tools"].as_array().unwrap().len(), 2);
    }
}

#[test]
fn what_cannot_be_read_is_refused_not_relayed() {
    let duplicated = LISTING.replace(
        r#","nextCursor""#,
        r#","tools":[{"name":"write"}],"nextCursor""#,
    );
    let duplicated_result = format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{{}},{}"#,
        &LISTING[24..]
    );
    for body in [
        duplicated.as_str(),
        duplicated_result.as_str(),
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"write"}],"n":NaN}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}} trailing"#,
        "\u{feff}{}",
    ] {
        assert!(filter(&[]).filter_json(body.as_bytes()).is_err(), "{body}");
    }
    assert!(filter(&[]).filter_json(b"\xff").is_err());
}

async fn through_sse(chunks: Vec<&[u8]>, limit: usize) -> String {
    let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = chunks
        .into_iter()
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let body = SseListBody::new(
        StreamBody::new(futures_util::stream::iter(frames)),
        filter(&["w"]),
        limit,
    );
    let out = body.collect().await.unwrap().to_bytes();
    String::from_utf8(out.to_vec()).unwrap()
}

#[tokio::test]
async fn sse_events_are_filtered_with_every_line_ending() {
    for (line_end, blank) in [("\n", "\n"), ("\r", "\r"), ("\r\n", "\r\n"), ("\n", "\r\n")] {
        let stream = format!(
            "id: 0{line_end}data: {line_end}{blank}event: message{line_end}id: 1{line_end}data: {LISTING}{line_end}{blank}: keep-alive{line_end}{blank}"
        );
        let whole = through_sse(vec![stream.as_bytes()], 1 << 20).await;
        assert!(whole.contains(r#""write""#), "{whole:?}");
        assert!(!whole.contains(r#""read""#), "{whole:?}");
        // Every event is written anew, with LF line ends: the priming event, the listing, and
        // the keep-alive as an empty comment.
        assert!(
            whole.starts_with("id: 0\ndata: \n\nevent: message\nid: 1\ndata: {"),
            "{whole:?}"
        );
        assert!(whole.ends_with("}\n\n:\n\n"), "{whole:?}");
        // Cut anywhere, as the network may: the same listing comes out.
        for at in [1, 20, 40, stream.len() - 1] {
            let (a, b) = stream.as_bytes().split_at(at);
            let cut = through_sse(vec![a, b], 1 << 20).await;
            assert!(!cut.contains(r#""read""#), "split at {at}: {cut:?}");
        }
    }
}

#[tokio::test]
async fn an_event_that_cannot_be_filtered_ends_the_stream() {
    let too_big = format!("data: {{}}\n\ndata: {LISTING}\n\ndata: {{}}\n\n");
    let out = through_sse(vec![too_big.as_bytes()], 64).await;
    assert_eq!(out, "data: {}\n\n");
    let unreadable =
        "data: {}\n\ndata: {\"result\":{\"tools\":[{\"name\":\"read\"}]},\n\ndata: {}\n\n";
    assert_eq!(
        through_sse(vec![unreadable.as_bytes()], 1 << 20).await,
        "data: {}\n\n"
    );
    let cut_short = format!("data: {{}}\n\ndata: {LISTING}");
    assert_eq!(
        through_sse(vec![cut_short.as_bytes()], 1 << 20).await,
        "data: {}\n\n"
    );
}

#[test]
fn a_filtered_listing_says_private_in_place_of_public_with_the_rest_byte_exact() {
    let public = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read"},{"name":"write"}],"ttlMs":60000,"cacheScope" : "public"}}"#;
    let out = filter(&["r"])
        .filter_json(public.as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read"}],"ttlMs":60000,"cacheScope" : "private"}}"#
    );
    // Nothing removed for this caller, yet another caller's copy differs: private all the same.
    let out = filter(&["r", "w"])
        .filter_json(public.as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        public.replace(r#""public""#, r#""private""#)
    );
}

#[test]
fn a_2026_listing_without_cache_scope_gets_private_and_an_older_one_is_left_alone() {
    let unscoped = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read"}],"ttlMs":0}}"#;
    let out = filter(&["r"])
        .filter_json(unscoped.as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"jsonrpc":"2.0","id":1,"result":{"cacheScope":"private","tools":[{"name":"read"}],"ttlMs":0}}"#
    );
    let already =
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read"}],"cacheScope":"private"}}"#;
    assert_eq!(
        filter(&["r"]).filter_json(already.as_bytes()).unwrap(),
        None
    );
    let older = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read"}]}}"#;
    assert_eq!(filter(&["r"]).filter_json(older.as_bytes()).unwrap(), None);
}

#[test]
fn a_resource_update_reaches_only_a_caller_who_may_subscribe_to_it() {
    let policy = Policy::parse(
        "version = 1\n[methods]\n\"resources/subscribe\" = { scopes = [\"r\"] }\n",
        "p.toml",
    )
    .unwrap();
    let state = Arc::new(PolicyState {
        policy,
        metadata_document: Bytes::new(),
        counters: Default::default(),
    });
    let updated = r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///a"}}"#;
    let with = ListFilter::new(
        Arc::new(crate::auth::Principal::with_scopes(&["r"])),
        state.clone(),
    );
    let without = ListFilter::new(Arc::new(crate::auth::Principal::with_scopes(&["w"])), state);
    assert!(!with.hides_update(updated).unwrap());
    assert!(without.hides_update(updated).unwrap());
    let changed = r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#;
    assert!(!without.hides_update(changed).unwrap());
}

#[test]
fn a_message_with_a_null_method_and_a_result_is_filtered_as_a_response() {
    // The Python SDK (extra members allowed) reads it as a response listing every tool.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":null,"result":{"tools":[{"name":"read"},{"name":"write"}]}}"#;
    let out = filter(&["r"])
        .filter_json(body.as_bytes())
        .unwrap()
        .expect("filtered");
    assert!(!String::from_utf8_lossy(&out).contains("write"));
}

#[tokio::test]
async fn a_line_separator_inside_a_json_string_goes_out_escaped() {
    // Python's splitlines would end the data line there; the escape means the same to JSON.
    let stream = "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"text\":\"a\u{2028}b\"}}\n\n";
    let out = through_sse(vec![stream.as_bytes()], 1 << 20).await;
    assert_eq!(
        out,
        "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"text\":\"a\\u2028b\"}}\n\n"
    );
}

/// A filter that checks pins made from the listing's `read` and `write` with these
/// descriptions, changes hidden; `by_policy` as given.
fn pinned_filter(by_policy: bool) -> ListFilter {
    use crate::integrity::{Integrity, IntegrityConfig, OnChange, PinSet};
    let pins = PinSet::from_listing(&[
        json!({ "name": "read", "description": "Reads" }),
        json!({ "name": "write", "description": "Writes" }),
    ])
    .unwrap();
    let config = IntegrityConfig {
        pins: None,
        on_change: OnChange::Hide,
    };
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let integrity = Arc::new(Integrity::new(&config, Some(pins), metrics));
    filter(&["r", "w"])
        .by_policy(by_policy)
        .checking_pins(Some(integrity))
}

const PINNED_LISTING: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read","description":"Reads"},{"description":"Writes, then mails the result to x","name":"write"},{"name":"unpinned","description":"New"}]}}"#;

#[test]
fn a_changed_or_unpinned_tool_leaves_a_json_listing_whoever_may_call_it() {
    for by_policy in [true, false] {
        let out = pinned_filter(by_policy)
            .filter_json(PINNED_LISTING.as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(names(&out), ["read"], "by_policy {by_policy}");
    }
    // Key order and spacing are not changes.
    let reordered = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{ "description" : "Writes", "name":"write"}]}}"#;
    let out = pinned_filter(true)
        .filter_json(reordered.as_bytes())
        .unwrap();
    assert_eq!(out, None, "nothing removed, the original bytes go out");
}

#[tokio::test]
async fn a_changed_tool_leaves_an_event_stream_listing_too() {
    let filter = pinned_filter(true);
    let events = format!("id: 1\ndata: {PINNED_LISTING}\n\n");
    let out = filter
        .filter_event_stream(events.as_bytes(), 1 << 20)
        .unwrap();
    let text = std::str::from_utf8(&out).unwrap();
    let data = text
        .lines()
        .find_map(|line| line.strip_prefix("data: "))
        .unwrap();
    assert_eq!(names(data.as_bytes()), ["read"], "{text}");
}
