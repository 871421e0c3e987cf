//! docs/json.md is the JSON output's contract: each object it lists has exactly the fields
//! it names, no more and no fewer. A sample of every report, with every optional field set,
//! is serialized the way the reporter does and compared with the document.

use provision::ops::{DbCopyReport, DoReport, DoResult, HostReleases, ReleaseReport, ReleasesReport, RollbackReport};
use provision::plan::{Action, Change};
use provision::report::{ChangeResult, HostReport, HostStatus, RunReport, Summary, Timings, JSON_FORMAT_VERSION};
use std::collections::{BTreeMap, BTreeSet};

/// `### name` → the backticked names of the `- ` items under it.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/json.md")).expect("docs/json.md");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut section = None;
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            section = Some(h.trim().to_string());
            out.entry(h.trim().to_string()).or_default();
        } else if line.starts_with("## ") {
            section = None;
        } else if let (Some(s), Some(rest)) = (&section, line.strip_prefix("- `")) {
            if let Some((field, _)) = rest.split_once('`') {
                out.entry(s.clone()).or_default().insert(field.to_string());
            }
        }
    }
    out
}

fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("serializes")
}

#[test]
fn every_documented_object_has_exactly_its_fields() {
    let docs = documented();
    let mut change = Change::new("file", "/etc/app.conf", Action::Update);
    change.role = "app".into();
    change.details = vec!["mode 0644 -> 0600".into()];
    change.diff = Some("@@ -1 +1 @@\n-a\n+b\n".into());
    change.assumption = Some("the user app exists (created earlier in this run)".into());
    change.notify = vec!["restart app".into()];
    let change = ChangeResult { change, status: "failed".into(), error: Some("exit status 1".into()) };
    let host = HostReport {
        host: "web1".into(),
        address: "192.0.2.10".into(),
        status: HostStatus::Failed,
        changes: vec![change.clone()],
        unchanged: 3,
        error: Some("a change failed".into()),
        round_trips: 2,
        timings_ms: Timings { connect: 1, probe: 2, apply: 3 },
    };
    let run = RunReport { format_version: JSON_FORMAT_VERSION, mode: "apply", hosts: vec![host.clone()], summary: Summary::default() };
    let release = ReleaseReport { release: "20260101000000".into(), revision: "abc".into(), ok: true, rolled_back: false, hosts: vec!["app1".into()], seconds: 1.0 };
    let rollback = RollbackReport { ok: true, hosts: vec![("app1".into(), "20260101000000".into())], seconds: 1.0 };
    let host_releases = HostReleases {
        host: "app1".into(),
        deploy_to: "/var/www/app".into(),
        releases: vec![("20260101000000".into(), "abc".into())],
        current: "20260101000000".into(),
        lock: Some("deploy@ci".into()),
        error: Some("cannot connect".into()),
    };
    let releases = ReleasesReport { hosts: vec![host_releases.clone()] };
    let result = DoResult { host: "worker1".into(), skipped: false, status: Some(0), error: Some("x".into()) };
    let r#do = DoReport { action: "sidekiq:quiet".into(), results: vec![result.clone()] };
    let db = DbCopyReport { source: "db2".into(), source_db: "app".into(), target: "db1".into(), target_db: "app".into(), bytes: 1 };

    let samples: Vec<(&str, serde_json::Value)> = vec![
        ("run", json(&run)),
        ("summary", json(&run.summary)),
        ("host", json(&host)),
        ("timings", json(&host.timings_ms)),
        ("change", json(&change)),
        ("release", json(&release)),
        ("rollback", json(&rollback)),
        ("releases", json(&releases)),
        ("host releases", json(&host_releases)),
        ("do", json(&r#do)),
        ("do result", json(&result)),
        ("db-copy", json(&db)),
    ];
    for (name, value) in &samples {
        let wanted = docs.get(*name).unwrap_or_else(|| panic!("docs/json.md has no `### {name}`"));
        assert_eq!(&keys(value), wanted, "`{name}`: the fields produced (left) and documented (right) differ");
    }
    // The event objects are built by the reporter, not by a type: their documented fields
    // are the ones tests/stack_release.rs parses.
    for (name, fields) in [("event", ["event", "host", "text"].as_slice()), ("summary event", &["event", "format_version", "verb", "ok", "exit"])] {
        let wanted: BTreeSet<String> = fields.iter().map(|s| s.to_string()).collect();
        assert_eq!(docs.get(name), Some(&wanted), "`{name}` in docs/json.md");
    }
    let sections: BTreeSet<&str> = samples.iter().map(|(n, _)| *n).chain(["event", "summary event"]).collect();
    for name in docs.keys() {
        assert!(sections.contains(name.as_str()), "docs/json.md documents `{name}`, which no test checks");
    }
    assert_eq!(run.format_version, 1, "docs/json.md is written for format_version 1");
}
