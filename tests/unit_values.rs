//! A value printed into a systemd unit is one line. A line break (or a carriage return)
//! in, say, `sidekiq_require` would end ExecStart= and start a setting of its own
//! (`ExecStartPre=+/bin/sh ...` runs as root whatever `User=` says), so every unit template
//! refuses it before anything connects, pointing at the unit's line; what a unit can hold
//! (quotes, a backslash, `$()`, a leading `-`) still renders. No host is needed:
//! `provision validate` renders every template and never connects.

mod common;
use common::{run_provision, Project};

/// The stack's roles, with hosts at documentation addresses (validated, never connected to).
fn project(var: &str, value: &str) -> Project {
    let p = Project::new(&[]);
    for r in ["stack", "app", "puma", "sidekiq", "faye", "redis", "mysql", "nginx"] {
        p.copy_role(r);
    }
    let value = serde_json::to_string(value).expect("json");
    p.write(
        "inventories/test.yml",
        &format!(
            "stage: staging\nvars:\n  app: flipper\n  secret_key_base: !secret k-0123456789\n  mysql_app_password: !secret p1\n  redis_password: !secret p2\n  {var}: {value}\nhosts:\n  web1:\n    address: 192.0.2.10\n    roles: [nginx]\n  app1:\n    address: 192.0.2.11\n    roles: [puma, sidekiq, faye]\n  db1:\n    address: 192.0.2.12\n    roles: [redis, mysql]\n"
        ),
    );
    p
}

#[test]
fn a_line_break_never_reaches_a_unit_and_one_line_values_do() {
    // (variable, the unit template it lands in)
    let cases = [
        ("sidekiq_require", "roles/sidekiq/templates/sidekiq.service.j2"),
        ("sidekiq_bin", "roles/sidekiq/templates/sidekiq.service.j2"),
        ("puma_bin", "roles/puma/templates/puma.service.j2"),
    ];
    let mut refused = 0;
    for (var, unit) in cases {
        for bad in ["./worker.rb\nExecStartPre=+/bin/sh -c 'id > /tmp/pwned'", "x\rUser=root", "\n[Service]\nUser=root"] {
            let p = project(var, bad);
            let r = run_provision(p.dir.path(), &[], &["validate", "inventories/test.yml"]);
            assert_eq!(r.code, 1, "{var}={bad:?} was not refused:\n{}", r.all());
            let err = &r.stderr;
            assert!(err.contains(unit) && err.contains("in a systemd unit it would end the line"), "{var}={bad:?}:\n{err}");
            assert!(!err.contains("connect"), "{var}={bad:?} reached a connection:\n{err}");
            refused += 1;
        }
        for fine in ["/usr/bin/tool", "./app's \"worker\".rb", "a\\b $(id) `id`", "-leading"] {
            let p = project(var, fine);
            let r = run_provision(p.dir.path(), &[], &["validate", "inventories/test.yml"]);
            assert_eq!(r.code, 0, "{var}={fine:?} should render:\n{}", r.all());
        }
    }
    common::record(&format!("unit values: {refused} line-breaking values refused in unit templates before connecting; one-line values with quotes, \\, $() and a leading - render"));
}
