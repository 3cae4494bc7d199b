//! The PostgreSQL audit sink against a real PostgreSQL: `migrations/002_audit.sql` applied
//! twice, the writer role that can only INSERT, appending and resuming the chain through
//! `pgward_audit.head()`, verification of the stored chain naming the first edited, deleted,
//! reordered or missing event, and a second writer refused as a fork.
//!
//! Each test works in a database of its own on the binary's shared cluster. Roles are
//! cluster-wide, so migrations and role changes are serialized by [`SETUP`].

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::sync::Arc;

use common::{Fixture, fixture};
use pgward::audit::chain::{
    Chain, Head, ProblemKind, Report, Start, encode_line, lines_of, verify_lines,
};
use pgward::audit::postgres::{PgSink, PgSinkError, migrate, read_lines};
use pgward::config::types::TlsSettings;
use serde_json::{Map, Value, json};
use tokio_postgres::NoTls;

/// The test cluster is on this machine: plain text, chosen by the defaults.
const LOCAL: TlsSettings = TlsSettings {
    mode: None,
    ca_file: None,
};

/// Held while migrating or changing roles: concurrent `ALTER ROLE`s of one role can fail
/// with "tuple concurrently updated".
static SETUP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A fresh database on the shared cluster with the audit migration applied (twice), and a
/// writer and a reader login role of its own (`<name>_w`, `<name>_r`).
struct AuditDb {
    f: Arc<Fixture>,
    name: String,
}

impl AuditDb {
    async fn create(name: &str, migrated: bool) -> AuditDb {
        let f = fixture();
        let su = f.superuser().await;
        // One statement each: CREATE DATABASE cannot run inside the implicit transaction of
        // a multi-statement query.
        su.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap();
        su.batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let db = AuditDb {
            f,
            name: name.into(),
        };
        if migrated {
            let _guard = SETUP.lock().await;
            migrate(&db.superuser_url(), &LOCAL)
                .await
                .expect("first migration");
            migrate(&db.superuser_url(), &LOCAL)
                .await
                .expect("the migration runs again");
            su.batch_execute(&format!(
                "DROP ROLE IF EXISTS {name}_w; DROP ROLE IF EXISTS {name}_r;
                 CREATE ROLE {name}_w LOGIN IN ROLE pgward_audit_writer;
                 CREATE ROLE {name}_r LOGIN IN ROLE pgward_audit_reader;"
            ))
            .await
            .unwrap();
        }
        db
    }

    /// `user`'s URL for this database (the cluster trusts loopback: no password).
    fn url(&self, user: &str) -> String {
        let url = self.f.url_for(user);
        let base = url
            .strip_suffix("/postgres")
            .expect("url ends in /postgres");
        format!("{base}/{}", self.name)
    }

    fn superuser_url(&self) -> String {
        self.url("postgres")
    }

    fn writer(&self) -> String {
        self.url(&format!("{}_w", self.name))
    }

    fn reader(&self) -> String {
        self.url(&format!("{}_r", self.name))
    }

    async fn client(&self, url: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }

    /// Verifies the stored chain from the genesis, as `pgward audit verify --postgres` does.
    async fn verify(&self, head: Option<&Head>) -> Report {
        let text = read_lines(&self.reader(), &LOCAL)
            .await
            .expect("read the audit table");
        verify_lines(lines_of("postgres", &text), None, &Start::Genesis, head)
    }
}

fn event(n: u64) -> Map<String, Value> {
    let v = json!({"kind": "tool_call", "n": n, "tool": "query", "codes": ["a", "b"]});
    v.as_object().unwrap().clone()
}

/// Seals event `n` and appends it, as the audit log does; returns the sealed event.
async fn append(sink: &PgSink, chain: &mut Chain, n: u64) -> Map<String, Value> {
    let sealed = chain.seal(event(n)).unwrap();
    let head = chain.head().unwrap().clone();
    sink.append(head.seq, &head.hash, &encode_line(&sealed))
        .await
        .expect("append");
    sealed
}

fn sqlstate<T: std::fmt::Debug>(r: Result<T, tokio_postgres::Error>) -> String {
    match r {
        Err(e) => e.code().expect("a server error").code().to_string(),
        Ok(v) => panic!("expected a refusal, got {v:?}"),
    }
}

fn at(report: &Report) -> (ProblemKind, usize, Option<u64>) {
    let p = report.problem.as_ref().expect("a problem");
    (p.kind, p.line, p.seq)
}

#[tokio::test]
async fn the_migration_is_idempotent_and_the_writer_can_only_insert() {
    let db = AuditDb::create("audit_roles", true).await;
    let su = db.client(&db.superuser_url()).await;
    {
        // A role that drifted ("superuser, just to debug") is pulled back by a re-run.
        let _guard = SETUP.lock().await;
        su.batch_execute("ALTER ROLE pgward_audit_writer SUPERUSER CREATEROLE")
            .await
            .unwrap();
        migrate(&db.superuser_url(), &LOCAL)
            .await
            .expect("third run");
    }
    let row = su
        .query_one(
            "SELECT rolsuper, rolcreaterole, rolcanlogin FROM pg_roles \
             WHERE rolname = 'pgward_audit_writer'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, bool>(0), row.get::<_, bool>(1), row.get(2)),
        (false, false, false)
    );

    let writer = db.client(&db.writer()).await;
    let denied = [
        "SELECT * FROM pgward_audit.events",
        "SELECT count(*) FROM pgward_audit.events",
        "UPDATE pgward_audit.events SET line = line",
        "DELETE FROM pgward_audit.events",
        "TRUNCATE pgward_audit.events",
        "DROP TABLE pgward_audit.events",
        "ALTER TABLE pgward_audit.events DISABLE TRIGGER ALL",
        "CREATE TABLE pgward_audit.planted (x int)",
    ];
    for sql in denied {
        assert_eq!(sqlstate(writer.batch_execute(sql).await), "42501", "{sql}");
    }
    // The legitimate case: a plain INSERT, and the newest row through head().
    let hash = "a".repeat(64);
    writer
        .execute(
            "INSERT INTO pgward_audit.events (seq, hash, line) VALUES (1, $1, '{}')",
            &[&hash],
        )
        .await
        .expect("the writer inserts");
    let head = writer
        .query_one("SELECT seq, line FROM pgward_audit.head()", &[])
        .await
        .expect("the writer calls head()");
    assert_eq!(
        (head.get::<_, i64>(0), head.get::<_, String>(1)),
        (1, "{}".into())
    );
    // Rows stay in the shape the verifier reads.
    let refused = [
        "INSERT INTO pgward_audit.events (seq, hash, line) VALUES (2, repeat('a', 64), E'{}\\n{}')",
        "INSERT INTO pgward_audit.events (seq, hash, line) VALUES (2, 'not-a-hash', '{}')",
        "INSERT INTO pgward_audit.events (seq, hash, line) VALUES (0, repeat('a', 64), '{}')",
    ];
    for sql in refused {
        assert_eq!(sqlstate(writer.batch_execute(sql).await), "23514", "{sql}");
    }
    // The writer cannot read the table back through the verifier either.
    match read_lines(&db.writer(), &LOCAL).await {
        Err(PgSinkError::Postgres { code, .. }) => assert_eq!(code, "42501"),
        other => panic!("the writer read the table: {other:?}"),
    }

    // The reader reads, and does nothing else.
    let reader = db.client(&db.reader()).await;
    assert_eq!(read_lines(&db.reader(), &LOCAL).await.unwrap(), "{}\n");
    for sql in [
        "INSERT INTO pgward_audit.events (seq, hash, line) VALUES (2, repeat('a', 64), '{}')",
        "UPDATE pgward_audit.events SET line = line",
        "DELETE FROM pgward_audit.events",
        "TRUNCATE pgward_audit.events",
        "SELECT * FROM pgward_audit.head()",
    ] {
        assert_eq!(sqlstate(reader.batch_execute(sql).await), "42501", "{sql}");
    }

    // A role in neither group gets nothing: not the schema, not the function.
    su.batch_execute("DROP ROLE IF EXISTS audit_roles_x; CREATE ROLE audit_roles_x LOGIN")
        .await
        .unwrap();
    let outsider = db.client(&db.url("audit_roles_x")).await;
    for sql in [
        "SELECT * FROM pgward_audit.events",
        "INSERT INTO pgward_audit.events (seq, hash, line) VALUES (2, repeat('a', 64), '{}')",
        "SELECT * FROM pgward_audit.head()",
    ] {
        assert_eq!(
            sqlstate(outsider.batch_execute(sql).await),
            "42501",
            "{sql}"
        );
    }

    // head() runs with its owner's rights, so its search_path is pinned.
    let f = su
        .query_one(
            "SELECT prosecdef, proconfig::text FROM pg_proc \
             WHERE oid = 'pgward_audit.head()'::regprocedure",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (f.get::<_, bool>(0), f.get::<_, String>(1)),
        (true, r#"{"search_path=pg_catalog, pg_temp"}"#.into())
    );
    // The posture check: the writer can rewrite nothing; the superuser everything.
    let sink = PgSink::connect(&db.writer(), &LOCAL).await.unwrap();
    assert_eq!(sink.rewrite_powers().await.unwrap(), Vec::<&str>::new());
    let sink = PgSink::connect(&db.superuser_url(), &LOCAL).await.unwrap();
    assert_eq!(
        sink.rewrite_powers().await.unwrap(),
        ["superuser", "owner", "update", "delete", "truncate"]
    );
    // A login role that was also handed DELETE shows it.
    su.batch_execute("GRANT DELETE ON pgward_audit.events TO audit_roles_x")
        .await
        .unwrap();
    su.batch_execute("GRANT pgward_audit_writer TO audit_roles_x")
        .await
        .unwrap();
    let sink = PgSink::connect(&db.url("audit_roles_x"), &LOCAL)
        .await
        .unwrap();
    assert_eq!(sink.rewrite_powers().await.unwrap(), ["delete"]);
    // Re-running kept the data.
    let n: i64 = su
        .query_one("SELECT count(*) FROM pgward_audit.events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_schema_created_by_someone_else_is_not_adopted() {
    let db = AuditDb::create("audit_squat", false).await;
    let su = db.client(&db.superuser_url()).await;
    su.batch_execute(
        "DROP ROLE IF EXISTS audit_squatter; CREATE ROLE audit_squatter LOGIN;
         GRANT CREATE ON DATABASE audit_squat TO audit_squatter;",
    )
    .await
    .unwrap();
    let squatter = db.client(&db.url("audit_squatter")).await;
    squatter
        .batch_execute("CREATE SCHEMA pgward_audit")
        .await
        .unwrap();
    let _guard = SETUP.lock().await;
    match migrate(&db.superuser_url(), &LOCAL).await {
        Err(PgSinkError::Postgres { code, message }) => {
            assert_eq!(code, "P0001");
            assert!(
                message.starts_with("schema pgward_audit is owned by audit_squatter"),
                "{message}"
            );
        }
        other => panic!("the squatted schema was adopted: {other:?}"),
    }
}

#[tokio::test]
async fn the_sink_appends_sealed_events_and_resumes_after_a_restart() {
    let db = AuditDb::create("audit_resume", true).await;
    let sink = PgSink::connect(&db.writer(), &LOCAL)
        .await
        .expect("connect");
    assert!(sink.reachable().await);
    assert_eq!(sink.head().await.unwrap(), None);

    let mut chain = Chain::new(None).unwrap();
    let mut sealed = Vec::new();
    for n in 1..=3 {
        sealed.push(append(&sink, &mut chain, n).await);
    }
    assert_eq!(sink.head().await.unwrap().as_ref(), sealed.last());

    // A restart: a new sink and a chain resumed from the table's newest event.
    drop((sink, chain));
    let sink = PgSink::connect(&db.writer(), &LOCAL)
        .await
        .expect("reconnect");
    let last = sink.head().await.unwrap().expect("a head");
    let mut chain = Chain::resume(&last, None).expect("resume");
    for n in 4..=5 {
        sealed.push(append(&sink, &mut chain, n).await);
    }
    // A line without its newline is stored the same way.
    let next = chain.seal(event(6)).unwrap();
    let head = chain.head().unwrap().clone();
    let line = encode_line(&next);
    sink.append(head.seq, &head.hash, line.trim_end_matches('\n'))
        .await
        .unwrap();
    sealed.push(next);

    let text = read_lines(&db.reader(), &LOCAL).await.unwrap();
    let expected: String = sealed.iter().map(encode_line).collect();
    assert_eq!(text, expected);
    let report = db.verify(chain.head()).await;
    assert_eq!(
        (report.problem, report.events, report.last_seq),
        (None, 6, Some(6))
    );
    assert_eq!(report.head.as_ref(), chain.head());
    // The columns are the line's own seq and hash; the line has no newline.
    let su = db.client(&db.superuser_url()).await;
    let row = su
        .query_one(
            "SELECT seq, hash, line FROM pgward_audit.events WHERE seq = 6",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, String>(1),
            row.get::<_, String>(2)
        ),
        (6, head.hash, line.trim_end_matches('\n').to_string())
    );
}

#[tokio::test]
async fn verify_names_the_first_edited_deleted_reordered_or_missing_event() {
    let db = AuditDb::create("audit_verify", true).await;
    let sink = PgSink::connect(&db.writer(), &LOCAL)
        .await
        .expect("connect");
    let mut chain = Chain::new(None).unwrap();
    for n in 1..=6 {
        append(&sink, &mut chain, n).await;
    }
    let head = chain.head().unwrap().clone();
    assert!(db.verify(Some(&head)).await.is_ok());

    // The table's owner (here a superuser) can change anything; the chain shows it.
    let su = db.client(&db.superuser_url()).await;
    let line = |seq: i64| {
        let su = &su;
        async move {
            su.query_one(
                "SELECT line FROM pgward_audit.events WHERE seq = $1",
                &[&seq],
            )
            .await
            .unwrap()
            .get::<_, String>(0)
        }
    };

    // Edited: one field of event 3.
    let original = line(3).await;
    su.execute(
        "UPDATE pgward_audit.events SET line = replace(line, '\"tool\":\"query\"', \
         '\"tool\":\"mallory\"') WHERE seq = 3",
        &[],
    )
    .await
    .unwrap();
    assert_ne!(line(3).await, original);
    let report = db.verify(Some(&head)).await;
    assert_eq!(at(&report), (ProblemKind::Edited, 3, Some(3)));
    assert_eq!(report.events, 2);
    su.execute(
        "UPDATE pgward_audit.events SET line = $1 WHERE seq = 3",
        &[&original],
    )
    .await
    .unwrap();
    assert!(db.verify(Some(&head)).await.is_ok());

    // Deleted: event 4 is gone, so event 5 follows event 3.
    let row = su
        .query_one(
            "DELETE FROM pgward_audit.events WHERE seq = 4 RETURNING hash, line",
            &[],
        )
        .await
        .unwrap();
    let (hash4, line4): (String, String) = (row.get(0), row.get(1));
    assert_eq!(
        at(&db.verify(Some(&head)).await),
        (ProblemKind::Deleted, 4, Some(5))
    );
    su.execute(
        "INSERT INTO pgward_audit.events (seq, hash, line) VALUES (4, $1, $2)",
        &[&hash4, &line4],
    )
    .await
    .unwrap();
    assert!(db.verify(Some(&head)).await.is_ok());

    // Reordered: the seq columns of events 2 and 3 swapped, so they read back swapped.
    let swap = "UPDATE pgward_audit.events SET seq = 1000 WHERE seq = 2;
                UPDATE pgward_audit.events SET seq = 2 WHERE seq = 3;
                UPDATE pgward_audit.events SET seq = 3 WHERE seq = 1000;";
    su.batch_execute(swap).await.unwrap();
    assert_eq!(
        at(&db.verify(Some(&head)).await),
        (ProblemKind::Reordered, 2, Some(3))
    );
    su.batch_execute(swap).await.unwrap();
    assert!(db.verify(Some(&head)).await.is_ok());

    // Truncated: the newest event deleted leaves a valid, shorter chain; only the head
    // recorded elsewhere shows it.
    su.execute("DELETE FROM pgward_audit.events WHERE seq = 6", &[])
        .await
        .unwrap();
    let report = db.verify(None).await;
    assert_eq!((report.problem, report.last_seq), (None, Some(5)));
    assert_eq!(
        at(&db.verify(Some(&head)).await),
        (ProblemKind::TailTruncated, 6, Some(6))
    );
}

#[tokio::test]
async fn a_second_writer_on_the_same_table_is_refused_as_a_fork() {
    let db = AuditDb::create("audit_fork", true).await;
    let a = PgSink::connect(&db.writer(), &LOCAL)
        .await
        .expect("first sink");
    let b = PgSink::connect(&db.writer(), &LOCAL)
        .await
        .expect("second sink");
    let mut chain_a = Chain::new(None).unwrap();
    append(&a, &mut chain_a, 1).await;
    append(&a, &mut chain_a, 2).await;

    // A second process starting its own chain collides at seq 1.
    let mut chain_b = Chain::new(None).unwrap();
    let sealed = chain_b.seal(event(99)).unwrap();
    let h = chain_b.head().unwrap().clone();
    let err = b
        .append(h.seq, &h.hash, &encode_line(&sealed))
        .await
        .unwrap_err();
    assert!(matches!(err, PgSinkError::Forked { seq: 1 }), "{err:?}");
    assert!(err.to_string().contains("fork the chain"), "{err}");

    // One that resumed from the same head as the first collides at the next seq.
    let mut chain_b = Chain::resume(&b.head().await.unwrap().unwrap(), None).unwrap();
    append(&a, &mut chain_a, 3).await;
    let sealed = chain_b.seal(event(99)).unwrap();
    let h = chain_b.head().unwrap().clone();
    let err = b
        .append(h.seq, &h.hash, &encode_line(&sealed))
        .await
        .unwrap_err();
    assert!(matches!(err, PgSinkError::Forked { seq: 3 }), "{err:?}");

    // A line that is not the event the seq and hash name is never stored.
    let sealed = chain_a.seal(event(4)).unwrap();
    let h = chain_a.head().unwrap().clone();
    let err = a
        .append(h.seq + 1, &h.hash, &encode_line(&sealed))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PgSinkError::BadLine { seq: 5, .. }),
        "{err:?}"
    );

    // The forks never got in: the table holds the first writer's chain only.
    let report = db.verify(None).await;
    assert_eq!(
        (report.problem, report.events, report.last_seq),
        (None, 3, Some(3))
    );
}

#[tokio::test]
async fn a_stuck_audit_database_fails_the_write_instead_of_holding_it() {
    let db = AuditDb::create("audit_stuck", true).await;
    let sink = PgSink::connect(&db.writer(), &LOCAL)
        .await
        .expect("connect");
    let mut chain = Chain::new(None).unwrap();
    append(&sink, &mut chain, 1).await;
    // The table locked by another session: the INSERT waits, and the statement timeout ends
    // the wait.
    let mut su = db.client(&db.superuser_url()).await;
    let tx = su.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE pgward_audit.events IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let sealed = chain.seal(event(2)).unwrap();
    let h = chain.head().unwrap().clone();
    let started = std::time::Instant::now();
    let err = sink
        .append(h.seq, &h.hash, &encode_line(&sealed))
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(&err, PgSinkError::Postgres { code, .. } if code == "57014"),
        "{err:?}"
    );
    assert!(
        waited >= std::time::Duration::from_secs(4) && waited < std::time::Duration::from_secs(15),
        "{waited:?}"
    );
    tx.rollback().await.unwrap();
    // Once the lock is gone the same event goes in (the failed INSERT stored nothing).
    sink.append(h.seq, &h.hash, &encode_line(&sealed))
        .await
        .expect("append after the lock");
    assert_eq!(db.verify(chain.head()).await.events, 2);
}

#[tokio::test]
async fn errors_name_the_problem_but_never_the_url() {
    let db = AuditDb::create("audit_bare", false).await;
    // The migration was never applied.
    let sink = PgSink::connect(&db.superuser_url(), &LOCAL)
        .await
        .expect("connect");
    assert!(matches!(sink.head().await, Err(PgSinkError::NotMigrated)));
    let hash = "a".repeat(64);
    let line = format!(r#"{{"hash":"{hash}","seq":1}}"#);
    assert!(matches!(
        sink.append(1, &hash, &line).await,
        Err(PgSinkError::NotMigrated)
    ));
    assert!(matches!(
        read_lines(&db.superuser_url(), &LOCAL).await,
        Err(PgSinkError::NotMigrated)
    ));

    // Nothing listens on the port: unavailable, and neither the user nor the password shows.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://audit_user:pw-s3cret@127.0.0.1:{port}/audit");
    let err = PgSink::connect(&url, &LOCAL).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PgSinkError::Unavailable(_)), "{err:?}");
    assert!(
        !text.contains("s3cret")
            && !text.contains("audit_user")
            && !text.contains(&port.to_string()),
        "{text}"
    );
    let err = migrate(&url, &LOCAL).await.unwrap_err();
    assert!(!err.to_string().contains("s3cret"), "{err}");

    let err = PgSink::connect("postgres://audit_user:pw-s3cret@[::1/audit", &LOCAL)
        .await
        .unwrap_err();
    assert!(matches!(err, PgSinkError::Url), "{err:?}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}
