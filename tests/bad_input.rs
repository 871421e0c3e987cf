//! Bad input: every mistake is reported with file:line:column, what is wrong and what to
//! do, before anything connects. The line and column are the offending node's: a duplicate
//! key's own, a wrong value's own (not its key's), a template's failing expression. The
//! hosts here are unreachable on purpose (loopback port 9): an attempt to connect would show
//! up as "cannot connect".
//!
//! Every case runs with the debug build and, when tests/run.sh built it, with the release
//! build (`PROVISION_RELEASE_BIN`): minijinja keeps an error's source and span only in debug
//! builds unless told otherwise, so positions could differ between the two.

mod common;
use common::{run_binary, Project, Run};
use std::path::PathBuf;

/// The binaries every case runs with: the debug build, and the release build when
/// `PROVISION_RELEASE_BIN` names it. On CI (`CI` set) it must: the release run is part of
/// what this table shows and may not be skipped silently.
fn binaries() -> Vec<PathBuf> {
    let mut bins = vec![PathBuf::from(env!("CARGO_BIN_EXE_provision"))];
    match std::env::var_os("PROVISION_RELEASE_BIN").filter(|v| !v.is_empty()) {
        Some(release) => {
            let release = PathBuf::from(release);
            assert!(release.is_file(), "PROVISION_RELEASE_BIN={} is not a file: build it with `cargo build --locked --release --bin provision`", release.display());
            bins.push(release);
        }
        None if std::env::var_os("CI").is_some() => panic!(
            "CI is set but PROVISION_RELEASE_BIN is not: the bad-input table must also run against the release build \
             (tests/run.sh builds it with `cargo build --locked --release --bin provision` and exports PROVISION_RELEASE_BIN)"
        ),
        None => {}
    }
    bins
}

/// `provision validate` of the project, with each binary.
fn validate(p: &Project) -> Vec<(PathBuf, Run)> {
    binaries().into_iter().map(|b| {
        let r = run_binary(&b, p.dir.path(), &["validate", "inventories/test.yml"], &[]);
        (b, r)
    }).collect()
}

/// Runs --check, apply and validate with each binary, asserting each fails before connecting
/// with all of `wanted` in its errors. `wanted[0]` is the exact `file:line:column`.
fn rejected(p: &Project, wanted: &[&str]) {
    let at = wanted.first().expect("a location");
    assert!(is_location(at), "`{at}`: name the exact file:line:column");
    for bin in binaries() {
        for args in [&["--check"][..], &[][..]] {
            let r = p.run_with(&bin, args);
            assert_eq!(r.code, 1, "{}: {}", bin.display(), r.all());
            for w in wanted {
                assert!(has(&r.stderr, w), "{}: missing `{w}` in:\n{}", bin.display(), r.all());
            }
            assert!(r.stderr.contains("nothing was changed") && !r.all().contains("cannot connect"), "{}", r.all());
        }
    }
    for (bin, v) in validate(p) {
        assert_eq!(v.code, 1, "{}: {}", bin.display(), v.all());
        for w in wanted {
            assert!(has(&v.stderr, w), "{} validate: missing `{w}` in:\n{}", bin.display(), v.all());
        }
    }
}

/// Whether `w` is a `file:line:column`.
fn is_location(w: &str) -> bool {
    let mut parts = w.rsplitn(3, ':');
    parts.next().is_some_and(|c| c.parse::<usize>().is_ok()) && parts.next().is_some_and(|l| l.parse::<usize>().is_ok()) && parts.next().is_some()
}

/// Whether `out` holds `w`; a location (`file:line:column`) must be followed by `: `, so
/// that `tasks.yml:1:3` does not match `tasks.yml:1:32`.
fn has(out: &str, w: &str) -> bool {
    if is_location(w) {
        out.contains(&format!("{w}: "))
    } else {
        out.contains(w)
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
    rejected(&p, &["roles/r/tasks.yml:2:10", "invalid YAML", "help:"]);
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
    // In a flow mapping, where serde_yaml reports the `{`.
    let p = project("- file: {path: /a, state: directory, path: /b}\n");
    rejected(&p, &["roles/r/tasks.yml:1:38", "duplicate entry with key \"path\"", "already set on line 1"]);
}

#[test]
fn unknown_key_in_a_task_and_in_module_arguments() {
    let p = project("- package: [tree]\n  notfy: x\n");
    rejected(&p, &["roles/r/tasks.yml:2:3", "`notfy`", "did you mean `notify`?"]);
    let p = project("- file:\n    path: /srv/x\n    state: directory\n    mdoe: \"0644\"\n");
    rejected(&p, &["roles/r/tasks.yml:4:5", "unknown key `mdoe`", "did you mean `mode`?"]);
    // The key itself in a flow mapping too, not the module it belongs to.
    let p = project("- file: {path: /srv/x, state: directory, mdoe: \"0644\"}\n");
    rejected(&p, &["roles/r/tasks.yml:1:42", "unknown key `mdoe`", "did you mean `mode`?"]);
}

#[test]
fn unknown_role_and_unknown_module() {
    let p = project("- package: [tree]\n");
    p.inventory(&[("unreachable", &["rr"])], "");
    rejected(&p, &["inventories/test.yml:9:13", "unknown role `rr`", "the roles are: r"]);
    let p = project("- pakage: [tree]\n");
    rejected(&p, &["roles/r/tasks.yml:1:3", "unknown module `pakage`", "did you mean `package`?"]);
}

#[test]
fn undefined_variable_and_template_syntax_error() {
    let p = project("- template: {src: a.j2, dest: /srv/a}\n");
    p.write("roles/r/templates/a.j2", "x\ny = {{ nginx_wrokers }}\n");
    rejected(&p, &["roles/r/templates/a.j2:2:8", "undefined variable `nginx_wrokers`", "defaults.yml"]);
    p.write("roles/r/templates/a.j2", "x\n{% for %}\n");
    rejected(&p, &["roles/r/templates/a.j2:2:8", "syntax error"]);
}

#[test]
fn a_template_error_in_a_task_points_at_the_expression_inside_the_value() {
    // Flow style, quoted: the column of `missing_dir` inside the string.
    let p = project("- file: {path: \"/srv/{{ missing_dir }}\", state: directory}\n");
    rejected(&p, &["roles/r/tasks.yml:1:25", "undefined variable `missing_dir`"]);
    // Block style: the value's line and the expression's column, not the key's.
    let p = project("- file:\n    path: \"/srv/{{ missing_dir }}\"\n    state: directory\n");
    rejected(&p, &["roles/r/tasks.yml:2:20", "undefined variable `missing_dir`"]);
    // Plain, in a list: the item's own position.
    let p = project("- package: [tree, \"{{ pkg_missing }}\"]\n");
    rejected(&p, &["roles/r/tasks.yml:1:23", "undefined variable `pkg_missing`"]);
    // A literal block (a script): the line inside it.
    let p = project("- command:\n    run: |\n      echo hi\n      echo {{ later_var }}\n    creates: /x\n");
    rejected(&p, &["roles/r/tasks.yml:4:15", "undefined variable `later_var`"]);
    // An escaped string cannot be mapped character for character: the value's start.
    let p = project("- file: {path: \"/srv/\\x41{{ esc_missing }}\", state: directory}\n");
    rejected(&p, &["roles/r/tasks.yml:1:16", "undefined variable `esc_missing`"]);
}

#[test]
fn when_and_loop_errors_speak_of_what_was_written() {
    // The expression is evaluated inside a wrapping; its syntax error must not be about it.
    let p = project("- file: {path: /srv/x, state: directory}\n  when: \"{{ x == }}\"\n");
    p.inventory(&[("unreachable", &["r"])], "vars:\n  x: 1\n");
    rejected(&p, &["roles/r/tasks.yml:2:15", "template syntax error: unexpected end of input"]);
    for (_, v) in validate(&p) {
        assert!(!v.stderr.contains("`)`"), "{}", v.all());
    }
    let p = project("- package: [tree]\n  when: \"1 == 1 and when_missing\"\n");
    rejected(&p, &["roles/r/tasks.yml:2:21", "undefined variable `when_missing`"]);
    let p = project("- package: [tree]\n  loop: \"{{ loop_missing }}\"\n");
    rejected(&p, &["roles/r/tasks.yml:2:13", "undefined variable `loop_missing`"]);
}

#[test]
fn wrong_types() {
    let p = project("- package: [tree]\n");
    let inv = std::fs::read_to_string(p.path("inventories/test.yml")).expect("inv").replace("port: 9", "port: ssh");
    p.write("inventories/test.yml", &inv);
    rejected(&p, &["inventories/test.yml:8:11", "`port` must be a number"]);
    // The value, not its key or the module's.
    let p = project("- file: {path: /srv/x, state: directory, mode: rwx}\n");
    rejected(&p, &["roles/r/tasks.yml:1:48", "not an octal file mode", "mode: \"0644\""]);
    let p = project("- user: {name: deploy, system: maybe}\n");
    rejected(&p, &["roles/r/tasks.yml:1:32", "`system` must be true or false"]);
    let p = project("- user:\n    name: deploy\n    system: maybe\n");
    rejected(&p, &["roles/r/tasks.yml:3:13", "`system` must be true or false"]);
    let p = project("- package: [tree, Bad_Name]\n");
    rejected(&p, &["roles/r/tasks.yml:1:19", "`Bad_Name` is not a valid Debian package name"]);
    let p = project("- file: {path: relative/path, state: directory}\n");
    rejected(&p, &["roles/r/tasks.yml:1:16", "must be an absolute path"]);
}

#[test]
fn sudoers_names_that_sudo_would_skip_and_unguarded_commands() {
    let p = project("- sudoers: {name: deploy.conf, user: deploy, commands: [/usr/bin/true]}\n");
    rejected(&p, &["roles/r/tasks.yml:1:19", "sudo ignores files"]);
    let p = project("- command: {run: make install}\n");
    rejected(&p, &["roles/r/tasks.yml:1:3", "no guard", "creates"]);
}

#[test]
fn a_secret_on_a_command_line_is_refused() {
    let p = project("- command: {run: \"mysql -p{{ pw }}\", unless: \"false\"}\n");
    p.inventory(&[("unreachable", &["r"])], "vars:\n  pw: !secret hunter22\n");
    rejected(&p, &["roles/r/tasks.yml:1:3", "visible in `ps`", "stdin"]);
    let r = p.run(&["--check"]);
    assert!(!r.all().contains("hunter22"));
    // Found statically, whatever the source and whether or not its value is at hand: an
    // unset environment variable, an age file without an identity.
    for source in ["!env PV_TEST_SURELY_UNSET_2f9c", "!age nosuch.age"] {
        p.inventory(&[("unreachable", &["r"])], &format!("vars:\n  pw: {source}\n"));
        for (_, v) in validate(&p) {
            assert!(v.code == 1 && has(&v.stderr, "roles/r/tasks.yml:1:3") && v.stderr.contains("visible in `ps`"), "{source}: {}", v.all());
        }
    }
    // A plain value on the same command line is fine.
    p.inventory(&[("unreachable", &["r"])], "vars:\n  pw: not-a-secret\n");
    for (_, v) in validate(&p) {
        assert_eq!(v.code, 0, "{}", v.all());
    }
}

#[test]
fn placeholder_addresses_are_validated_but_never_connected_to() {
    let p = project("- package: [tree]\n");
    p.write("inventories/test.yml", "stage: production\nhosts:\n  web1:\n    address: 192.0.2.10\n    roles: [r]\n");
    for (_, v) in validate(&p) {
        assert_eq!(v.code, 0, "{}", v.all());
    }
    for bin in binaries() {
        let r = p.run_with(&bin, &["--check"]);
        assert_eq!(r.code, 1);
        assert!(has(&r.stderr, "inventories/test.yml:4:14") && r.stderr.contains("placeholder address 192.0.2.10"), "{}", r.all());
    }
}

#[test]
fn every_error_is_listed_at_once() {
    let p = project("- pakage: [tree]\n- file: {path: relative/path, state: directory}\n");
    p.write("roles/r/handlers.yml", "x:\n  unit: {name: nginx, state: restarted}\n");
    for (_, v) in validate(&p) {
        assert_eq!(v.code, 1);
        assert!(has(&v.stderr, "roles/r/tasks.yml:1:3") && v.stderr.contains("unknown module `pakage`"), "{}", v.all());
        assert!(has(&v.stderr, "roles/r/tasks.yml:2:16") && v.stderr.contains("must be an absolute path"), "{}", v.all());
        assert!(v.stderr.contains("2 error(s)"), "{}", v.all());
    }
}

#[test]
fn a_failed_assert_stops_the_run_with_its_message() {
    let p = project("- name: the pool covers sidekiq\n  assert:\n    that: \"{{ db_pool | int >= concurrency | int }}\"\n    message: \"db_pool ({{ db_pool }}) is smaller than sidekiq's concurrency ({{ concurrency }})\"\n- package: [tree]\n");
    p.write("roles/r/defaults.yml", "# threads\nconcurrency: 10\n# pool\ndb_pool: 5\n");
    rejected(&p, &["roles/r/tasks.yml:1:3", "db_pool (5) is smaller than sidekiq's concurrency (10)", "the pool covers sidekiq"]);
    p.write("roles/r/defaults.yml", "concurrency: 5\ndb_pool: 5\n");
    for (_, v) in validate(&p) {
        assert_eq!(v.code, 0, "{}", v.all());
    }
    // A bare expression that does not parse: the error is about it, at its value.
    let p = project("- assert:\n    that: db_pool >=\n");
    p.write("roles/r/defaults.yml", "db_pool: 5\n");
    rejected(&p, &["roles/r/tasks.yml:2:19", "template syntax error: unexpected end of input"]);
}

#[test]
fn an_argument_that_is_only_an_undefined_variable_is_an_error() {
    let p = project("- command: {run: \"{{ not_set }}\", creates: /x}\n");
    rejected(&p, &["roles/r/tasks.yml:1:22", "undefined variable `not_set`"]);
}

/// `- include: NAME` reads the file of that name under the role's tasks/, as a name and
/// nothing else: quotes, `\`, `$()`, backquotes, a newline and a leading `-` are characters
/// of a file name (the included file's own error proves it was the one read), and nothing
/// runs; a name that would leave tasks/ is refused at the include's line.
#[test]
fn include_names_are_file_names_never_code() {
    let marker = std::env::temp_dir().join(format!("pv-include-marker-{}", std::process::id()));
    let m = marker.display().to_string();
    let names = ["a'b.yml".to_string(), "a\"b.yml".into(), "a\\b.yml".into(), format!("$(touch {m}).yml"), format!("`touch {m}`.yml"), "-x.yml".into(), "a\nb.yml".into(), "sub dir/ok.yml".into()];
    for (i, name) in names.iter().enumerate() {
        let include = serde_json::to_string(name).expect("json");
        let p = project(&format!("- include: {include}\n"));
        p.write(&format!("roles/r/tasks/{name}"), &format!("- bogus_module_{i}: {{}}\n"));
        let v = common::run_provision(p.dir.path(), &["validate", "inventories/test.yml"], &[]);
        assert_eq!(v.code, 1, "{name:?}: {}", v.all());
        assert!(v.stderr.contains(&format!("unknown module `bogus_module_{i}`")), "{name:?} was not read as a file name: {}", v.all());
    }
    assert!(!marker.exists(), "an include name ran as code");
    for name in ["../tasks.yml", "/etc/x.yml", "x.yaml", "a/../../b.yml", "./x.yml", ""] {
        let include = serde_json::to_string(name).expect("json");
        let p = project(&format!("- include: {include}\n"));
        let v = common::run_provision(p.dir.path(), &["validate", "inventories/test.yml"], &[]);
        assert_eq!(v.code, 1, "{name:?}: {}", v.all());
        assert!(v.stderr.contains("roles/r/tasks.yml:1:") && v.stderr.contains("must name a .yml file under the role's tasks/ directory"), "{name:?}: {}", v.all());
    }
}
