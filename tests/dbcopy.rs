//! `provision db-copy` between two inventories on real hosts: t1's MariaDB (the source)
//! into t2's (the target), streamed; a production target is refused and keeps its data.

mod common;
use common::{address, run_provision, ssh, testbed_dir, Project};

fn inventory(p: &Project, file: &str, stage: &str, host: &str, db: &str) {
    let tb = testbed_dir();
    p.write(
        &format!("inventories/{file}"),
        &format!(
            "stage: {stage}\nssh:\n  identity_file: {}\n  known_hosts: {}\nvars:\n  app_db_name: {db}\nhosts:\n  {host}:\n    address: {}\n    roles: [mysql]\n    primary: true\n",
            tb.join("id_ed25519").display(),
            tb.join("known_hosts").display(),
            address(host)
        ),
    );
}

#[test]
fn db_copy_streams_rows_and_refuses_production() {
    let _s = common::serial();
    let p = Project::new(&[]);
    p.write(
        "roles/mysql/tasks.yml",
        "- package: [mariadb-server]\n\
         - unit: {name: mariadb, enabled: true, state: started}\n\
         - command: {run: mysql, sql: \"CREATE DATABASE IF NOT EXISTS {{ app_db_name | sql_ident }};\", unless: \"mysql -e {{ 'use ' ~ (app_db_name | sql_ident) }}\"}\n",
    );
    inventory(&p, "src.yml", "production", "t1", "pvsrc");
    inventory(&p, "dst.yml", "staging", "t2", "pvdst");
    inventory(&p, "prod.yml", "production", "t2", "pvdst");
    for inv in ["inventories/src.yml", "inventories/dst.yml"] {
        let r = run_provision(p.dir.path(), &[inv], &[]);
        assert_eq!(r.code, 0, "{}", r.all());
    }
    ssh("t1", "mysql pvsrc -e \"DROP TABLE IF EXISTS items; CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20)); INSERT INTO items VALUES (1,'a'),(2,'b'),(3,'c');\"");
    ssh("t2", "mysql pvdst -e 'DROP TABLE IF EXISTS items'");

    let r = run_provision(p.dir.path(), &["db-copy", "--from", "inventories/src.yml", "--to", "inventories/dst.yml"], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("copied pvsrc (t1) into pvdst (t2)"), "{}", r.all());
    assert_eq!(ssh("t2", "mysql pvdst -Nse 'SELECT GROUP_CONCAT(name ORDER BY id) FROM items'"), "a,b,c\n");

    // Into production: refused before connecting, the target's rows stay as they are.
    ssh("t1", "mysql pvsrc -e \"INSERT INTO items VALUES (4,'d')\"");
    let r = run_provision(p.dir.path(), &["db-copy", "--from", "inventories/src.yml", "--to", "inventories/prod.yml"], &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("refusing to copy") && r.stderr.contains("production"), "{}", r.all());
    assert_eq!(ssh("t2", "mysql pvdst -Nse 'SELECT COUNT(*) FROM items'"), "3\n");
    // The dump never touched this machine's disk: nothing but the project's own files here.
    let files: Vec<_> = walk(p.dir.path());
    assert!(files.iter().all(|f| !f.contains("dump") && !f.ends_with(".sql")), "{files:?}");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path().display().to_string());
        }
    }
    out
}
