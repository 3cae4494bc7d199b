//! The real `pgward` binary, serving MCP over stdio to a real MCP client, against a real
//! PostgreSQL loaded with the demo data and the least-privilege role.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{TestConfig, boundary_of, fixture, spawn_pgward, text_of};
use rmcp::model::CallToolResult;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Strings that would mean internal detail leaked into what the model reads.
const INTERNAL_MARKERS: &[&str] = &[
    "/root",
    "/work",
    ".rs",
    "panicked",
    "postgres://",
    "password",
    "reader-pw",
    "stack backtrace",
    "DETAIL",
    "HINT",
];

fn code_of(result: &CallToolResult) -> String {
    result
        .structured_content
        .as_ref()
        .and_then(|s| s.get("error"))
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn assert_refused(result: &CallToolResult, code: &str) {
    assert_eq!(
        result.is_error,
        Some(true),
        "expected a tool error: {}",
        text_of(result)
    );
    assert_eq!(code_of(result), code, "{}", text_of(result));
}

/// Every marker of internal detail is absent, except one the caller's own input contains
/// (an error may echo the offending name back, truncated).
fn assert_no_internal_detail(result: &CallToolResult, input: &str) {
    let all = format!(
        "{}\n{}",
        text_of(result),
        result.structured_content.clone().unwrap_or(Value::Null)
    );
    for marker in INTERNAL_MARKERS {
        if input.to_lowercase().contains(&marker.to_lowercase()) {
            continue;
        }
        assert!(
            !all.contains(marker),
            "`{marker}` in the answer to {:?}: {all}",
            truncated(input)
        );
    }
}

fn truncated(s: &str) -> String {
    s.chars().take(60).collect()
}

// 1 ----------------------------------------------------------------------------------------

#[tokio::test]
async fn initialize_and_list_offer_exactly_the_read_only_tools() {
    let f = fixture();
    let server = f.serve(&TestConfig::default()).await;

    let info = server.client.peer_info().expect("initialized");
    assert!(info.capabilities.tools.is_some(), "tools are offered");
    assert!(info.capabilities.prompts.is_none(), "no prompts capability");
    assert!(
        info.capabilities.resources.is_none(),
        "no resources capability"
    );
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("pgward-test")
    );

    let tools = server.client.list_all_tools().await.expect("tools/list");
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        vec![
            "describe_table",
            "list_tables",
            "orders_for_customer",
            "query"
        ]
    );
    for tool in &tools {
        let ann = tool
            .annotations
            .as_ref()
            .unwrap_or_else(|| panic!("{} has annotations", tool.name));
        assert_eq!(ann.read_only_hint, Some(true), "{}", tool.name);
        assert_eq!(ann.destructive_hint, Some(false), "{}", tool.name);
        assert_eq!(
            tool.input_schema.get("type"),
            Some(&json!("object")),
            "{}",
            tool.name
        );
        assert_eq!(
            tool.input_schema.get("additionalProperties"),
            Some(&json!(false)),
            "{}",
            tool.name
        );
        let out = tool
            .output_schema
            .as_ref()
            .unwrap_or_else(|| panic!("{} has an output schema", tool.name));
        assert_eq!(out.get("type"), Some(&json!("object")), "{}", tool.name);
        assert!(tool.description.as_ref().is_some_and(|d| !d.is_empty()));
    }
    let lookup = tools
        .iter()
        .find(|t| t.name == "orders_for_customer")
        .unwrap();
    assert_eq!(
        lookup.input_schema["properties"]["customer_id"]["type"],
        json!("integer")
    );
    assert_eq!(lookup.input_schema["required"], json!(["customer_id"]));

    let prompts = server.client.list_prompts(None).await;
    assert!(prompts.is_err(), "prompts/list is not served: {prompts:?}");
    // The failed request did not end the session.
    let r = server.call("list_tables", json!({})).await;
    assert_ne!(r.is_error, Some(true));
}

// 2 ----------------------------------------------------------------------------------------

#[tokio::test]
async fn tools_answer_with_rows_tables_and_typed_lookups() {
    let f = fixture();
    let server = f.serve(&TestConfig::default()).await;

    let r = server
        .call(
            "query",
            json!({"sql": "SELECT id, customer_id, status FROM orders ORDER BY id LIMIT 3"}),
        )
        .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let s = r.structured_content.clone().expect("structured content");
    assert_eq!(s["columns"], json!(["id", "customer_id", "status"]));
    assert_eq!(s["row_count"], json!(3));
    assert_eq!(s["truncated"], json!(false));
    let rows = s["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows.iter().map(|r| r[0].clone()).collect::<Vec<_>>(),
        vec![json!(1), json!(2), json!(3)]
    );
    let text = text_of(&r);
    assert!(text.starts_with("3 rows returned."), "{text}");
    boundary_of(&text);
    assert!(
        r.meta
            .as_ref()
            .is_some_and(|m| m.0.contains_key("pgward/sql")),
        "the canonical SQL is in _meta"
    );

    // The row cap applies through the tool: no LIMIT gets max_rows.
    let r = server
        .call("query", json!({"sql": "SELECT id FROM orders"}))
        .await;
    let s = r.structured_content.clone().unwrap();
    assert_eq!(s["row_count"], json!(50), "{}", text_of(&r));
    assert_eq!(s["truncated"], json!(true));
    assert_eq!(s["truncation_reason"], json!("rows"));

    let r = server.call("list_tables", json!({})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let s = r.structured_content.clone().unwrap();
    let mut tables: Vec<String> = s["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    tables.sort();
    assert_eq!(
        tables,
        vec![
            "public.customers",
            "public.orders",
            "public.products",
            "public.support_tickets"
        ]
    );
    let text = text_of(&r);
    assert!(!text.contains("internal"), "{text}");
    assert!(!text.contains("staff_passwords"), "{text}");

    let su = f.superuser().await;
    let expected: Vec<i64> = su
        .query(
            "SELECT id FROM public.orders WHERE customer_id = 1 ORDER BY ordered_at DESC, id LIMIT 50",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!expected.is_empty(), "customer 1 has orders");
    let r = server
        .call("orders_for_customer", json!({"customer_id": 1}))
        .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let s = r.structured_content.clone().unwrap();
    assert_eq!(
        s["columns"],
        json!([
            "id",
            "product_id",
            "quantity",
            "total",
            "status",
            "ordered_at"
        ])
    );
    let got: Vec<i64> = s["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_i64().unwrap())
        .collect();
    assert_eq!(got, expected);

    for bad in [
        json!({"customer_id": 0}),
        json!({"customer_id": -5}),
        json!({"customer_id": "1; DROP"}),
        json!({"customer_id": 1.5}),
        json!({"customer_id": 1, "extra": true}),
        json!({}),
    ] {
        let r = server.call("orders_for_customer", bad.clone()).await;
        assert_refused(&r, "invalid_arguments");
        assert_no_internal_detail(&r, &bad.to_string());
    }
}

// 3 ----------------------------------------------------------------------------------------

/// Each hostile input with the code `query` refuses it with.
fn hostile_inputs() -> Vec<(String, &'static str)> {
    vec![
        ("'; DROP TABLE users; --".into(), "parse_error"),
        (
            "SELECT * FROM users UNION SELECT * FROM passwords".into(),
            "table_not_allowed",
        ),
        ("../../../etc/passwd".into(), "parse_error"),
        ("{{7*7}}".into(), "parse_error"),
        ("<script>alert('xss')</script>".into(), "parse_error"),
        ("A".repeat(100_000), "sql_too_long"),
        ("\x00\x01\x02".into(), "parse_error"),
        (r#"{"__proto__": {"admin": true}}"#.into(), "parse_error"),
    ]
}

#[tokio::test]
async fn hostile_inputs_get_tool_errors_without_internal_detail() {
    let f = fixture();
    let server = f.serve(&TestConfig::default()).await;

    for (input, code) in hostile_inputs() {
        let r = server.call("query", json!({ "sql": input })).await;
        assert_eq!(
            r.is_error,
            Some(true),
            "query {:?}: {}",
            truncated(&input),
            text_of(&r)
        );
        assert_eq!(code_of(&r), code, "{}", text_of(&r));
        assert_no_internal_detail(&r, &input);
        assert!(
            text_of(&r).len() < 2000,
            "a long input is not echoed in full"
        );

        let r = server
            .call("describe_table", json!({ "table": input }))
            .await;
        assert_eq!(
            r.is_error,
            Some(true),
            "describe_table {:?}: {}",
            truncated(&input),
            text_of(&r)
        );
        assert_eq!(code_of(&r), "table_not_allowed", "{}", text_of(&r));
        assert_no_internal_detail(&r, &input);
        assert!(
            text_of(&r).len() < 1000,
            "a long input is not echoed in full"
        );
    }

    // The prototype-pollution object as the whole arguments object.
    let r = server
        .call("query", json!({"__proto__": {"admin": true}}))
        .await;
    assert_refused(&r, "invalid_arguments");
    assert_no_internal_detail(&r, "");
    let r = server
        .call(
            "query",
            json!({"sql": "SELECT 1", "__proto__": {"admin": true}}),
        )
        .await;
    assert_refused(&r, "invalid_arguments");
    let r = server
        .call("describe_table", json!({"__proto__": {"admin": true}}))
        .await;
    assert_refused(&r, "invalid_arguments");
    let r = server.call("no_such_tool", json!({})).await;
    assert_refused(&r, "unknown_tool");

    // Still alive and answering.
    let r = server
        .call(
            "query",
            json!({"sql": "SELECT id FROM products ORDER BY id LIMIT 1"}),
        )
        .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    assert_eq!(r.structured_content.unwrap()["rows"], json!([[1]]));
}

// 4 ----------------------------------------------------------------------------------------

#[tokio::test]
async fn writes_and_hidden_data_are_refused_with_their_codes() {
    let f = fixture();
    let server = f.serve(&TestConfig::default()).await;

    let cases = [
        ("DELETE FROM orders", "data_modifying"),
        (
            "UPDATE orders SET status = 'refunded' WHERE id = 1",
            "data_modifying",
        ),
        ("DROP TABLE orders", "not_select"),
        ("SELECT * FROM internal.api_keys", "table_not_allowed"),
        ("SELECT * FROM staff_passwords", "table_not_allowed"),
        ("SELECT ssn FROM customers", "column_not_allowed"),
    ];
    for (sql, code) in cases {
        let r = server.call("query", json!({ "sql": sql })).await;
        assert_refused(&r, code);
        assert!(text_of(&r).contains(code), "{}", text_of(&r));
        assert_no_internal_detail(&r, sql);
    }

    let su = f.superuser().await;
    let n: i64 = su
        .query_one("SELECT count(*) FROM public.orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2000, "nothing was deleted");
}

// 5 ----------------------------------------------------------------------------------------

/// Reads stdout lines until the responses with `ids` have all arrived; every line must be a
/// JSON-RPC 2.0 message.
async fn read_responses(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    ids: &[u64],
) -> BTreeMap<u64, Value> {
    let mut got = BTreeMap::new();
    while got.len() < ids.len() {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("a response in time")
            .expect("read stdout")
            .expect("stdout still open");
        let msg: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout carried a non-JSON line ({e}): {line}"));
        assert_eq!(msg["jsonrpc"], json!("2.0"), "{line}");
        if let Some(id) = msg.get("id").and_then(Value::as_u64) {
            got.insert(id, msg);
        }
    }
    got
}

#[tokio::test]
async fn stdout_carries_only_json_rpc_and_the_server_exits_when_the_client_leaves() {
    let f = fixture();
    let (_dir, path) = f.write_config(&TestConfig::default());
    let (mut child, stderr) = spawn_pgward(&path);
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    let send = |v: Value| format!("{v}\n");
    stdin
        .write_all(
            send(
                json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "raw-test", "version": "0"}
                }}),
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let init = read_responses(&mut lines, &[1]).await;
    assert!(init[&1].get("result").is_some(), "{}", init[&1]);
    assert!(init[&1]["result"]["capabilities"].get("prompts").is_none());

    let mut batch = String::new();
    batch.push_str(&send(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    ));
    batch.push_str(&send(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    ));
    batch.push_str(&send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "query", "arguments": {"sql": "SELECT id FROM orders ORDER BY id LIMIT 2"}
        }}),
    ));
    batch.push_str(&send(
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
            "name": "query", "arguments": {"sql": "DELETE FROM orders"}
        }}),
    ));
    batch.push_str(&send(
        json!({"jsonrpc": "2.0", "id": 5, "method": "prompts/list"}),
    ));
    stdin.write_all(batch.as_bytes()).await.unwrap();
    let got = read_responses(&mut lines, &[2, 3, 4, 5]).await;
    assert_eq!(got[&2]["result"]["tools"].as_array().unwrap().len(), 4);
    assert_eq!(
        got[&3]["result"]["structuredContent"]["rows"],
        json!([[1], [2]])
    );
    assert_eq!(got[&4]["result"]["isError"], json!(true));
    assert_eq!(
        got[&5]["error"]["code"],
        json!(-32601),
        "prompts/list is method-not-found: {}",
        got[&5]
    );

    // The client leaves: stdin closes, and the server exits on its own, cleanly.
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("the server exits within 5 s of the client leaving")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    // Nothing more was written to stdout.
    while let Some(line) = lines.next_line().await.unwrap() {
        let msg: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout carried a non-JSON line ({e}): {line}"));
        assert_eq!(msg["jsonrpc"], json!("2.0"), "{line}");
    }

    // The logs went to stderr (the audit line of each call included).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = stderr.lock().unwrap().clone();
    assert!(log.contains("pgward serving MCP over stdio"), "{log}");
    assert!(log.contains("\"kind\":\"tool_call\""), "{log}");
    assert!(!log.contains("reader-pw"), "no secret in the log: {log}");
}

#[tokio::test]
async fn the_server_exits_cleanly_when_the_mcp_client_disconnects() {
    let f = fixture();
    let mut server = f.serve(&TestConfig::default()).await;
    let r = server.call("list_tables", json!({})).await;
    assert_ne!(r.is_error, Some(true));

    let client = server.client;
    let quit = client.cancel().await;
    assert!(quit.is_ok(), "{quit:?}");
    let status = tokio::time::timeout(Duration::from_secs(5), server.child.wait())
        .await
        .expect("the server exits within 5 s of the client disconnecting")
        .unwrap();
    assert!(status.success(), "exit status {status}");
}
