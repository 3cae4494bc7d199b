//! `pgward demo`: a throwaway PostgreSQL with the sample data (`demo/schema.sql`), the
//! least-privilege role (`migrations/001_readonly_role.sql`), a generated config, and stdio
//! serving. The cluster is removed when pgward exits. Everything it says goes to stderr;
//! stdout belongs to the MCP protocol.

use crate::app::{self, AppError};
use crate::config::load::{parse, resolve_env};
use crate::db::cluster::{self, TempCluster};
use crate::mcp;

const SCHEMA: &str = include_str!("../demo/schema.sql");
const READER_ROLE: &str = include_str!("../migrations/001_readonly_role.sql");
const TENANTS: &str = include_str!("../migrations/003_demo_tenants.sql");

/// The demo's config; `${...}` values are filled from per-run random secrets.
const DEMO_CONFIG: &str = r#"
[server]
name = "pgward-demo"
stdio_principal = "stdio:demo"
# The demo caller belongs to tenant "acme" (over HTTP this claim comes from the token).
stdio_claims = { tenant = "acme" }

# Row-level security in the database: tenant_notes' policy reads this setting, which pgward
# sets per transaction from the caller's claim.
[session]
settings = { "pgward.tenant" = "tenant" }

[database]
url = "postgres://pgward_reader:${DEMO_DB_PASSWORD}@127.0.0.1:${DEMO_PORT}/postgres"
statement_timeout_ms = 5000

[limits]
max_rows = 200

[redaction]
hash_key = "${DEMO_HASH_KEY}"

[[tables]]
name = "customers"
columns = ["id", "full_name", "email", "phone", "country", "created_at", "lifetime_value"]
description = "Customers. email is masked and phone is shown as a keyed hash; ssn is not visible at all."
redact = { email = "mask", phone = "hash" }

[[tables]]
name = "orders"
columns = "all"
description = "Orders: one product per order, with quantity, total and status"

[[tables]]
name = "products"
columns = "all"
description = "Product catalogue"

[[tables]]
name = "support_tickets"
columns = "all"
description = "Customer support tickets (free text written by customers)"

[[tables]]
name = "projects"
columns = ["id", "name"]
description = "Projects of your tenant (pgward filters the rows by your tenant claim)"
row_filter = { column = "tenant", claim = "tenant" }

[[tables]]
name = "tasks"
columns = ["id", "project_id", "title", "done"]
description = "Tasks of your tenant's projects (filtered by your tenant claim)"
row_filter = { column = "tenant", claim = "tenant" }

[[tables]]
name = "tenant_notes"
columns = ["id", "body"]
description = "Notes of your tenant (filtered by row-level security in PostgreSQL)"

[[tools]]
name = "orders_for_customer"
description = "The 50 most recent orders of one customer"
sql = "SELECT id, product_id, quantity, total, status, ordered_at FROM orders WHERE customer_id = $1 ORDER BY ordered_at DESC LIMIT 50"

[[tools.params]]
name = "customer_id"
type = "integer"
description = "The customer's id"
minimum = 1
"#;

fn token() -> Result<String, AppError> {
    let mut buf = [0u8; 16];
    getrandom::fill(&mut buf).map_err(|e| AppError::Demo(format!("no OS randomness: {e}")))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

pub async fn run(no_serve: bool) -> Result<(), AppError> {
    eprintln!("pgward demo: starting a throwaway PostgreSQL cluster...");
    let cluster = tokio::task::spawn_blocking(TempCluster::start)
        .await
        .map_err(|e| AppError::Demo(e.to_string()))?
        .map_err(|e| AppError::Demo(e.to_string()))?;
    let password = token()?;
    let hash_key = token()?;
    let admin = cluster.superuser_url();
    let setup = async {
        cluster::run_sql(&admin, SCHEMA).await?;
        cluster::run_sql(&admin, READER_ROLE).await?;
        cluster::run_sql(&admin, TENANTS).await?;
        cluster::run_sql(
            &admin,
            &format!("ALTER ROLE pgward_reader PASSWORD '{password}'"),
        )
        .await
    };
    setup
        .await
        .map_err(|e| AppError::Demo(format!("loading the sample data failed: {e}")))?;
    let port = cluster.port().to_string();
    let lookup = |name: &str| match name {
        "DEMO_DB_PASSWORD" => Some(password.clone()),
        "DEMO_HASH_KEY" => Some(hash_key.clone()),
        "DEMO_PORT" => Some(port.clone()),
        _ => None,
    };
    let cfg = resolve_env(parse(DEMO_CONFIG)?, &lookup)?;
    let engine = app::build_engine_from(cfg).await?;
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "pgward".into());
    let tables: Vec<String> = engine
        .settings()
        .policy
        .tables
        .keys()
        .map(|t| t.to_string())
        .collect();
    eprintln!(
        "pgward demo: PostgreSQL from {} on 127.0.0.1:{} with sample data; pgward connects as the least-privilege role pgward_reader.\n\
         pgward demo: tables the model may query: {}. Hidden: customers.ssn, public.staff_passwords, schema internal.\n\
         pgward demo: support ticket 42 carries a prompt-injection text; pgward flags it in results.\n\
         pgward demo: you are tenant `acme`: projects and tasks are filtered by pgward, tenant_notes by row-level security; tenant globex's rows stay invisible.\n\
         \n\
         Add it to Claude Desktop (claude_desktop_config.json):\n\
         {{\"mcpServers\": {{\"pgward-demo\": {{\"command\": \"{exe}\", \"args\": [\"demo\"]}}}}}}\n\
         Or to Claude Code:\n\
         claude mcp add pgward-demo -- {exe} demo\n",
        cluster::TempCluster::find_bindir()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        cluster.port(),
        tables.join(", "),
    );
    if no_serve {
        eprintln!("pgward demo: --no-serve given; removing the cluster and exiting");
        return Ok(());
    }
    eprintln!("pgward demo: serving MCP over stdio; the cluster is removed when pgward exits");
    let result = mcp::serve_stdio(engine, app::shutdown_signal()).await;
    drop(cluster);
    result.map_err(AppError::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn demo_config_is_valid_offline() {
        let lookup = |_: &str| Some("x".to_string());
        let cfg = resolve_env(parse(DEMO_CONFIG).unwrap(), &lookup).unwrap();
        let s = crate::config::validate(&cfg, &BTreeMap::new()).unwrap();
        assert_eq!(s.policy.tables.len(), 7);
        assert_eq!(s.session_settings.len(), 1);
        assert_eq!(s.tools.len(), 1);
    }
}
