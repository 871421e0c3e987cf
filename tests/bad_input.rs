//! Bad input: every mistake is reported with file:line, what is wrong and what to do,
//! before anything connects. The hosts here are unreachable on purpose (loopback port 9):
//! an attempt to connect would show up as "cannot connect".

mod common;
use common::{run_provision, Project};

/// Runs --check, apply and validate, asserting each fails before connecting with all of `wanted` in its errors.
fn rejected(p: &Project, wanted: &[&str]) {
    for args in [&["--check"][..], &[][..]] {
        let r = p.run(args);
        assert_eq!(r.code, 1, "{}", r.all());
        for w in wanted {
            assert!(r.stderr.contains(w), "missing `{w}` in:\n{}", r.all());
        }
        assert!(r.stderr.contains("nothing was changed") && !r.all().contains("cannot connect"), "{}", r.all());
    }
    let v = run_provision(p.dir.path(), &["validate", "inventories/test.yml"], &[]);
    assert_eq!(v.code, 1, "{}", v.all());
    for w in wanted {
        assert!(v.stderr.contains(w), "validate: missing `{w}` in:\n{}", v.all());
    }
}

fn project(tasks: &str) -> Project {
    let p = Project::new(&[("unreachable", &["r"])]);
    p.write("roles/r/tasks.yml", tasks);
    p
}

#[test]
fn malformed_yaml_in_a_role() {
    let p = project("- file: {path: /x, state: directory\n- package: [a]\n");
    rejected(&p, &["roles/r/tasks.yml:", "invalid YAML", "help:"]);
}

#[test]
fn unknown_key_in_the_inventory() {
    let p = project("- package: [tree]\n");
    let inv = std::fs::read_to_string(p.path("inventories/test.yml")).expect("inv").replace("    roles:", "    rolse: [r]\n    roles:");
    p.write("inventories/test.yml", &inv);
    rejected(&p, &["inventories/test.yml:9:5", "unknown key `rolse`", "did you mean `roles`?"]);
}

#[test]
fn a_duplicate_key_points_at_the_duplicate_not_at_its_mapping() {
    let p = project("- package: [tree]\n");
    let inv = std::fs::read_to_string(p.path("inventories/test.yml")).expect("inv");
    let first = inv.lines().position(|l| l.starts_with("    roles:")).expect("roles line") + 1;
    p.write("inventories/test.yml", &format!("{inv}    roles: [r]\n"));
    let second = first + 1;
    rejected(&p, &[&format!("inventories/test.yml:{second}:5"), "duplicate entry with key \"roles\"", &format!("already set on line {first}")]);
    // In a role's tasks too, one level down.
    let p = project("- file:\n    path: /srv/x\n    state: directory\n    path: /srv/y\n");
    rejected(&p, &["roles/r/tasks.yml:4:5", "duplicate entry with key \"path\"", "already set on line 2"]);
}

#[test]
fn unknown_key_in_a_task_and_in_module_arguments() {
    let p = project("- package: [tree]\n  notfy: x\n");
    rejected(&p, &["roles/r/tasks.yml:2:3", "`notfy`", "did you mean `notify`?"]);
    let p = project("- file:\n    path: /srv/x\n    state: directory\n    mdoe: \"0644\"\n");
    rejected(&p, &["roles/r/tasks.yml:4:5", "unknown key `mdoe`", "did you mean `mode`?"]);
}

#[test]
fn unknown_role_and_unknown_module() {
    let p = project("- package: [tree]\n");
    p.inventory(&[("unreachable", &["rr"])], "");
    rejected(&p, &["inventories/test.yml:9:", "unknown role `rr`", "the roles are: r"]);
    let p = project("- pakage: [tree]\n");
    rejected(&p, &["roles/r/tasks.yml:1:3", "unknown module `pakage`", "did you mean `package`?"]);
}

#[test]
fn undefined_variable_and_template_syntax_error() {
    let p = project("- template: {src: a.j2, dest: /srv/a}\n");
    p.write("roles/r/templates/a.j2", "x\ny = {{ nginx_wrokers }}\n");
    rejected(&p, &["roles/r/templates/a.j2:2:", "undefined", "nginx_wrokers", "defaults.yml"]);
    p.write("roles/r/templates/a.j2", "x\n{% for %}\n");
    rejected(&p, &["roles/r/templates/a.j2:2:", "syntax error"]);
    let p = project("- file: {path: \"/srv/{{ missing_dir }}\", state: directory}\n");
    rejected(&p, &["roles/r/tasks.yml:1:", "missing_dir"]);
}

#[test]
fn wrong_types() {
    let p = project("- package: [tree]\n");
    let inv = std::fs::read_to_string(p.path("inventories/test.yml")).expect("inv").replace("port: 9", "port: ssh");
    p.write("inventories/test.yml", &inv);
    rejected(&p, &["inventories/test.yml:8:5", "`port` must be a number"]);
    let p = project("- file: {path: /srv/x, state: directory, mode: rwx}\n");
    rejected(&p, &["roles/r/tasks.yml:1:", "not an octal file mode", "mode: \"0644\""]);
    let p = project("- user: {name: deploy, system: maybe}\n");
    rejected(&p, &["roles/r/tasks.yml:1:", "`system` must be true or false"]);
}

#[test]
fn sudoers_names_that_sudo_would_skip_and_unguarded_commands() {
    let p = project("- sudoers: {name: deploy.conf, user: deploy, commands: [/usr/bin/true]}\n");
    rejected(&p, &["roles/r/tasks.yml:1:", "sudo ignores files"]);
    let p = project("- command: {run: make install}\n");
    rejected(&p, &["roles/r/tasks.yml:1:", "no guard", "creates"]);
}

#[test]
fn a_secret_on_a_command_line_is_refused() {
    let p = project("- command: {run: \"mysql -p{{ pw }}\", unless: \"false\"}\n");
    p.inventory(&[("unreachable", &["r"])], "vars:\n  pw: !secret hunter22\n");
    rejected(&p, &["roles/r/tasks.yml:1:", "visible in `ps`", "stdin"]);
    let r = p.run(&["--check"]);
    assert!(!r.all().contains("hunter22"));
    // Found statically, whatever the source and whether or not its value is at hand: an
    // unset environment variable, an age file without an identity.
    for source in ["!env PV_TEST_SURELY_UNSET_2f9c", "!age nosuch.age"] {
        p.inventory(&[("unreachable", &["r"])], &format!("vars:\n  pw: {source}\n"));
        let v = run_provision(p.dir.path(), &["validate", "inventories/test.yml"], &[]);
        assert!(v.code == 1 && v.stderr.contains("roles/r/tasks.yml:1:") && v.stderr.contains("visible in `ps`"), "{source}: {}", v.all());
    }
    // A plain value on the same command line is fine.
    p.inventory(&[("unreachable", &["r"])], "vars:\n  pw: not-a-secret\n");
    let v = run_provision(p.dir.path(), &["validate", "inventories/test.yml"], &[]);
    assert_eq!(v.code, 0, "{}", v.all());
}

#[test]
fn placeholder_addresses_are_validated_but_never_connected_to() {
    let p = project("- package: [tree]\n");
    p.write("inventories/test.yml", "stage: production\nhosts:\n  web1:\n    address: 192.0.2.10\n    roles: [r]\n");
    let v = run_provision(p.dir.path(), &["validate", "inventories/test.yml"], &[]);
    assert_eq!(v.code, 0, "{}", v.all());
    let r = p.run(&["--check"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("inventories/test.yml:4:5") && r.stderr.contains("placeholder address 192.0.2.10"), "{}", r.all());
}

#[test]
fn every_error_is_listed_at_once() {
    let p = project("- pakage: [tree]\n- file: {path: relative/path, state: directory}\n");
    p.write("roles/r/handlers.yml", "x:\n  unit: {name: nginx, state: restarted}\n");
    let v = run_provision(p.dir.path(), &["validate", "inventories/test.yml"], &[]);
    assert_eq!(v.code, 1);
    assert!(v.stderr.contains("unknown module `pakage`") && v.stderr.contains("must be an absolute path"), "{}", v.all());
    assert!(v.stderr.contains("2 error(s)"), "{}", v.all());
}

#[test]
fn a_failed_assert_stops_the_run_with_its_message() {
    let p = project("- name: the pool covers sidekiq\n  assert:\n    that: \"{{ db_pool | int >= concurrency | int }}\"\n    message: \"db_pool ({{ db_pool }}) is smaller than sidekiq's concurrency ({{ concurrency }})\"\n- package: [tree]\n");
    p.write("roles/r/defaults.yml", "# threads\nconcurrency: 10\n# pool\ndb_pool: 5\n");
    rejected(&p, &["roles/r/tasks.yml:1:", "db_pool (5) is smaller than sidekiq's concurrency (10)", "the pool covers sidekiq"]);
    p.write("roles/r/defaults.yml", "concurrency: 5\ndb_pool: 5\n");
    let v = run_provision(p.dir.path(), &["validate", "inventories/test.yml"], &[]);
    assert_eq!(v.code, 0, "{}", v.all());
}

#[test]
fn an_argument_that_is_only_an_undefined_variable_is_an_error() {
    let p = project("- command: {run: \"{{ not_set }}\", creates: /x}\n");
    rejected(&p, &["roles/r/tasks.yml:1:", "not_set"]);
}
