//! The official MCP Python SDK calls pgward over Streamable HTTP with a bearer token: the
//! interoperability check for the HTTP transport. `scripts/test.sh` provides the SDK in a
//! virtualenv and exports `PGWARD_TEST_PYTHON`; without it this test fails rather than
//! silently passing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;
#[path = "common/http.rs"]
mod http;

use std::time::Duration;

use common::fixture;
use http::{HttpServer, Knobs};

#[tokio::test]
async fn the_python_sdk_calls_pgward_over_http() {
    let python = std::env::var("PGWARD_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "PGWARD_TEST_PYTHON is not set: run the suite through scripts/test.sh, which creates \
             a virtualenv with the MCP Python SDK (`pip install \"mcp>=1.10\"`) and exports \
             PGWARD_TEST_PYTHON=<venv>/bin/python"
        )
    });
    let f = fixture();
    // The SDK makes several requests per session (and two sessions): room above the default
    // burst so the rate limit does not get in the way.
    let srv = HttpServer::start(
        &f,
        Knobs {
            rate_per_principal: 100,
            ..Knobs::default()
        },
    )
    .await;
    let token = srv.token("python-sdk", "db:read");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/test_http_client.py"
    );
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&python)
            .arg(script)
            .arg(srv.url())
            .arg(&token)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the Python client finished within 60 s")
    .unwrap_or_else(|e| panic!("cannot run `{python}`: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.lines().any(|l| l.trim() == "ok"),
        "the Python SDK client failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}\npgward stderr:\n{}",
        out.status,
        srv.stderr()
    );
    eprintln!("{stderr}");
}
