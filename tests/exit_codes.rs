//! The exit-status table (README, `provision --help`): 0 success, 1 error, 2 changes pending
//! with --check, 64 a wrong command line. A typo never looks like drift, and a closed pipe
//! never turns into a panic.

mod common;
use common::{run_provision, ssh, Project};
use std::process::{Command, Stdio};

const OK: i32 = 0;
const FAILED: i32 = 1;
const CHANGES_PENDING: i32 = 2;
const USAGE: i32 = 64;

#[test]
fn the_command_line_table() {
    let p = Project::new(&[("unreachable", &["r"])]);
    p.write("roles/r/tasks.yml", "- file: {path: /srv/x, state: directory}\n");
    let bad = Project::new(&[("unreachable", &["r"])]);
    bad.write("roles/r/tasks.yml", "- file: {path: relative/x, state: directory}\n");
    // (arguments, project, status, what stderr must say)
    let table: &[(&[&str], &Project, i32, &str)] = &[
        (&["--help"], &p, OK, ""),
        (&["--version"], &p, OK, ""),
        (&["validate", "inventories/test.yml"], &p, OK, ""),
        (&["validate", "inventories/test.yml"], &bad, FAILED, "roles/r/tasks.yml:1"),
        (&["inventories/nosuch.yml", "--check"], &p, FAILED, "inventories/nosuch.yml"),
        (&["--bogus"], &p, USAGE, "unexpected argument '--bogus'"),
        (&["validate", "inventories/test.yml", "--bogus"], &p, USAGE, "--bogus"),
        (&["release", "inventories/test.yml"], &p, USAGE, "--dir"),
        (&["do"], &p, USAGE, "required"),
        (&["valdiate"], &p, USAGE, "did you mean `provision validate`?"),
        (&["valdiate", "inventories/test.yml"], &p, USAGE, "did you mean `provision validate`?"),
        (&["relase", "--dir", "app"], &p, USAGE, "did you mean `provision release`?"),
        (&["rollbak"], &p, USAGE, "did you mean `provision rollback`?"),
        (&["tsks"], &p, USAGE, "did you mean `provision tasks`?"),
        (&["db"], &p, USAGE, "did you mean `provision db-copy`?"),
        (&["rel"], &p, USAGE, "did you mean `provision release` or `provision releases`?"),
        // A word far from every verb is an inventory that does not exist: an error, not a usage hint.
        (&["staging"], &p, FAILED, "cannot read `staging`"),
    ];
    for (args, project, status, says) in table {
        let r = run_provision(project.dir.path(), args, &[]);
        assert_eq!(r.code, *status, "provision {}: {}", args.join(" "), r.all());
        assert!(r.stderr.contains(says), "provision {}: `{says}` missing in:\n{}", args.join(" "), r.all());
        assert!(!r.all().contains("panicked"), "provision {}: {}", args.join(" "), r.all());
    }
    // An existing file of a verb's name is an inventory, never a hint.
    p.write("valdiate", &std::fs::read_to_string(p.path("inventories/test.yml")).expect("inventory"));
    let r = run_provision(p.dir.path(), &["validate", "valdiate"], &[]);
    assert_eq!(r.code, OK, "{}", r.all());
}

#[test]
fn changes_pending_is_two_only_with_check_and_a_closed_pipe_is_no_panic() {
    let p = Project::new(&[("t1", &["r"])]);
    let dir = "/srv/pv-exit-codes";
    ssh("t1", &format!("rm -rf {dir}"));
    p.write("roles/r/tasks.yml", &format!("- file: {{path: {dir}, state: directory}}\n"));
    let r = p.run(&["--check"]);
    assert_eq!(r.code, CHANGES_PENDING, "{}", r.all());
    assert_eq!(ssh("t1", &format!("test -e {dir} && echo there || echo absent")), "absent\n", "--check changed the host");
    // Colour: never into a pipe by default, --color always anyway, CLICOLOR_FORCE without the flag.
    assert!(!r.stdout.contains('\x1b'), "colour into a pipe:\n{}", r.stdout);
    let always = p.run(&["--check", "--color", "always"]);
    assert!(always.code == CHANGES_PENDING && always.stdout.contains("\x1b["), "--color always: {}", always.all());
    let forced = Command::new(env!("CARGO_BIN_EXE_provision"))
        .current_dir(p.dir.path())
        .env_remove("NO_COLOR")
        .env("CLICOLOR_FORCE", "1")
        .args(["inventories/test.yml", "--check"])
        .output()
        .expect("provision runs");
    assert!(String::from_utf8_lossy(&forced.stdout).contains("\x1b["), "CLICOLOR_FORCE=1 gave no colour");
    let never = Command::new(env!("CARGO_BIN_EXE_provision"))
        .current_dir(p.dir.path())
        .env_remove("NO_COLOR")
        .env("CLICOLOR_FORCE", "1")
        .args(["inventories/test.yml", "--check", "--color", "never"])
        .output()
        .expect("provision runs");
    assert!(!String::from_utf8_lossy(&never.stdout).contains('\x1b'), "--color never gave colour");

    // The reader of stdout is gone before provision writes: the run still ends normally
    // (0 here: the apply succeeds), never with a panic (101).
    let mut child = Command::new(env!("CARGO_BIN_EXE_provision"))
        .current_dir(p.dir.path())
        .env("NO_COLOR", "1")
        .args(["inventories/test.yml", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("provision runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert!(matches!(out.status.code(), Some(OK) | None), "a closed stdout: {:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert_eq!(ssh("t1", &format!("test -d {dir} && echo there")), "there\n", "the apply did not finish");

    let r = p.run(&["--check"]);
    assert_eq!(r.code, OK, "nothing would change: {}", r.all());
    ssh("t1", &format!("rm -rf {dir}"));
}

#[test]
fn completions_and_the_man_page_come_from_the_parser() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bash = run_provision(dir.path(), &["completions", "bash"], &[]);
    assert_eq!(bash.code, OK, "{}", bash.all());
    for verb in ["release", "rollback", "db-copy", "validate", "--check", "--limit"] {
        assert!(bash.stdout.contains(verb), "the bash completion does not know `{verb}`");
    }
    // bash itself loads it and registers the completion.
    std::fs::write(dir.path().join("provision.bash"), &bash.stdout).expect("write");
    let loaded = Command::new("bash").current_dir(dir.path()).args(["-c", "source ./provision.bash && complete -p provision"]).output().expect("bash runs");
    assert!(loaded.status.success() && String::from_utf8_lossy(&loaded.stdout).contains("provision"), "{loaded:?}");
    for shell in ["zsh", "fish"] {
        let r = run_provision(dir.path(), &["completions", shell], &[]);
        assert!(r.code == OK && r.stdout.contains("release"), "{shell}: {}", r.all());
    }
    let r = run_provision(dir.path(), &["completions", "tcsh"], &[]);
    assert_eq!(r.code, USAGE, "an unknown shell is a usage error: {}", r.all());
    let man = run_provision(dir.path(), &["man"], &[]);
    assert_eq!(man.code, OK, "{}", man.all());
    assert!(man.stdout.starts_with(".ie") || man.stdout.contains(".TH provision"), "not a man page:\n{}", &man.stdout[..man.stdout.len().min(300)]);
    assert!(man.stdout.contains("release"), "the man page lists the verbs");
}

/// `--shard K/N` over 4 shards covers every selected host exactly once, and `provision report
/// merge` of the shards' JSON reports equals the unsharded run's host list and summary. The hosts are loopback
/// ports where nothing listens: each fails at once, and still appears in the report.
#[test]
fn four_shards_cover_every_host_exactly_once() {
    let p = Project::new(&[]);
    p.write("roles/r/tasks.yml", "- file: {path: /srv/x, state: directory}\n");
    let tb = common::testbed_dir();
    let mut inv = format!("stage: test\nssh:\n  identity_file: {}\n  known_hosts: {}\n  connect_timeout: 2\nhosts:\n", tb.join("id_ed25519").display(), tb.join("known_hosts").display());
    for i in 1..=10 {
        inv.push_str(&format!("  u{i}: {{address: 127.0.0.1, port: {i}, roles: [r]}}\n"));
    }
    p.write("inventories/test.yml", &inv);
    let report = |args: &[&str]| -> serde_json::Value {
        let r = p.run(&[&["--check", "--format", "json"], args].concat());
        assert_eq!(r.code, FAILED, "nothing listens there: {}", r.all());
        r.json()
    };
    let names = |j: &serde_json::Value| -> Vec<String> { j["hosts"].as_array().expect("hosts").iter().map(|h| h["host"].as_str().unwrap_or_default().to_string()).collect() };
    let unsharded = report(&[]);
    let all = names(&unsharded);
    assert_eq!(all.len(), 10);
    let shards: Vec<serde_json::Value> = (1..=4).map(|k| report(&["--shard", &format!("{k}/4")])).collect();
    let mut covered: Vec<String> = shards.iter().flat_map(names).collect();
    covered.sort_by_key(|h| all.iter().position(|a| a == h));
    assert_eq!(covered, all, "each host in exactly one shard: {:?}", shards.iter().map(names).collect::<Vec<_>>());
    // A shard is stable: the same hosts every time, and a host keeps its shard when another
    // is added to the inventory.
    assert_eq!(names(&report(&["--shard", "3/4"])), names(&shards[2]));
    // The shards' reports merge into the unsharded one.
    for (k, s) in shards.iter().enumerate() {
        p.write(&format!("shard-{}.json", k + 1), &s.to_string());
    }
    let files: Vec<String> = (1..=4).map(|k| format!("shard-{k}.json")).collect();
    let mut args: Vec<&str> = vec!["merge", "--inventory", "inventories/test.yml"];
    args.extend(files.iter().map(String::as_str));
    let merged = run_provision(p.dir.path(), &["report"], &args);
    assert_eq!(merged.code, FAILED, "every host failed, as in the unsharded run: {}", merged.all());
    let merged: serde_json::Value = serde_json::from_str(&merged.stdout).expect("merged JSON");
    assert_eq!(names(&merged), all, "the merged host list is the unsharded run's, in its order");
    assert_eq!(merged["summary"], unsharded["summary"]);
    assert_eq!(merged["mode"], "check");
    // Not one run: a host twice, or a check merged with an apply, is refused.
    let twice = run_provision(p.dir.path(), &["report"], &["merge", "shard-1.json", "shard-1.json"]);
    assert!(twice.code == FAILED && twice.stderr.contains("is in two reports"), "{}", twice.all());
    let inv_more = format!("{inv}  u11: {{address: 127.0.0.1, port: 11, roles: [r]}}\n");
    p.write("inventories/test.yml", &inv_more);
    let with_new: Vec<String> = names(&report(&["--shard", "3/4"])).into_iter().filter(|h| h != "u11").collect();
    assert_eq!(with_new, names(&shards[2]), "a host added elsewhere moves no host between shards");
    p.write("inventories/test.yml", &inv);
    // With --limit, the shards split the selection.
    let limited: Vec<String> = (1..=2).flat_map(|k| names(&report(&["--limit", "u2", "--limit", "u3", "--limit", "u4", "--shard", &format!("{k}/2")]))).collect();
    assert_eq!(limited.len(), 3, "{limited:?}");
    for bad in ["0/4", "5/4", "1/0", "x"] {
        assert_eq!(p.run(&["--check", "--shard", bad]).code, USAGE, "--shard {bad}");
    }
}
