//! `facts.*` in templates, end to end on a testbed host: the values are the host's own
//! (read back against /proc/meminfo, nproc, /etc/os-release and uname on the host), and
//! reading them costs no round trip: a run is still one probe (+ one apply when something
//! changes). The other side: a fact that decides what to probe (a path) costs a second
//! probe, said in the output, and still lands right.

mod common;
use common::{run_provision, ssh, Project};

const H: &str = "t2";

/// Runs provision in `p` with the controller's cache of facts under `cache`.
fn run(p: &Project, cache: &std::path::Path, args: &[&str]) -> common::Run {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_provision"))
        .current_dir(p.dir.path())
        .env("NO_COLOR", "1")
        .env("XDG_CACHE_HOME", cache)
        .arg("inventories/test.yml")
        .args(args)
        .output()
        .expect("run provision");
    common::Run { code: o.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&o.stdout).into_owned(), stderr: String::from_utf8_lossy(&o.stderr).into_owned() }
}

fn round_trips(r: &common::Run) -> u64 {
    r.json()["hosts"][0]["round_trips"].as_u64().unwrap_or_else(|| panic!("no round_trips in:\n{}", r.all()))
}

/// What the host says about itself, in the template's format.
fn host_says() -> String {
    let mem_kb: u64 = ssh(H, "awk '/^MemTotal:/ {print $2}' /proc/meminfo").trim().parse().expect("MemTotal");
    let os = ssh(H, ". /etc/os-release && printf '%s %s %s' \"$ID\" \"$VERSION_ID\" \"$VERSION_CODENAME\"");
    let cpus = ssh(H, "nproc");
    let arch = ssh(H, "uname -m");
    format!("memory_mb={} half={} cpus={} os={} arch={}\n", mem_kb / 1024, mem_kb / 1024 / 2, cpus.trim(), os.trim(), arch.trim())
}

#[test]
fn facts_reach_templates_in_the_one_probe_round_trip() {
    let _serial = common::serial();
    let cache = tempfile::tempdir().expect("tempdir");
    let cache = cache.path();
    let p = Project::new(&[(H, &["f"])]);
    // A variable computed from a fact, and a template reading facts directly.
    p.write("roles/f/defaults.yml", "half_mb: \"{{ (facts.memory_mb / 2) | int }}\"\n");
    p.write(
        "roles/f/tasks.yml",
        "- file: {path: /srv/pv-facts, state: directory}\n- template: {src: facts.j2, dest: /srv/pv-facts/facts}\n- file: {path: /srv/pv-facts/plain, content: \"no facts here\\n\"}\n",
    );
    p.write(
        "roles/f/templates/facts.j2",
        "memory_mb={{ facts.memory_mb }} half={{ half_mb }} cpus={{ facts.cpus }} os={{ facts.os_id }} {{ facts.os_version_id }} {{ facts.os_codename }} arch={{ facts.arch }}\n",
    );
    ssh(H, "rm -rf /srv/pv-facts");

    // validate never connects: it renders with stand-in facts and passes.
    let v = run_provision(p.dir.path(), &["validate", "inventories/test.yml"], &[]);
    assert_eq!(v.code, 0, "{}", v.all());

    // --check: one round trip, and what it shows is the host's real values.
    let check = run(&p, cache, &["--check", "--format", "json", "-v"]);
    assert_eq!(check.code, 2, "{}", check.all());
    assert_eq!(round_trips(&check), 1, "a check reads the facts in its one probe: {}", check.all());
    let want = host_says();
    assert!(check.all().contains(&format!("+{}", want.trim_end())), "the check's diff shows the host's facts `{want}`:\n{}", check.all());

    // The apply: probe + apply, as for any change; the file holds the host's facts.
    let apply = run(&p, cache, &["--format", "json"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(round_trips(&apply), 2, "probe + apply: {}", apply.all());
    assert_eq!(ssh(H, "cat /srv/pv-facts/facts"), want);

    // A no-op run: one round trip, nothing to change.
    let again = run(&p, cache, &["--format", "json"]);
    assert_eq!((again.code, again.changes(), round_trips(&again)), (0, 0, 1), "{}", again.all());

    // A fact in a path decides what the probe reads. Met for the first time (no facts kept on
    // this controller: the stand-ins, whose memory differs from the host's), the host is
    // probed a second time, said in the output; with the facts kept from that probe, one
    // round trip again. The result is right either way.
    p.write("roles/f/tasks.yml", "- file: {path: /srv/pv-facts, state: directory}\n- file: {path: \"/srv/pv-facts/mb-{{ facts.memory_mb }}\", content: \"x\\n\"}\n");
    let first_contact = tempfile::tempdir().expect("tempdir");
    let check = run(&p, first_contact.path(), &["--check", "--format", "json", "-v"]);
    assert_eq!(check.code, 2, "{}", check.all());
    assert_eq!(round_trips(&check), 2, "{}", check.all());
    let text = run(&p, tempfile::tempdir().expect("tempdir").path(), &["--check", "-v"]);
    assert!(text.all().contains("probing again"), "{}", text.all());
    let kept = run(&p, first_contact.path(), &["--check", "--format", "json"]);
    assert_eq!((kept.code, round_trips(&kept)), (2, 1), "with the kept facts: {}", kept.all());
    let mb: u64 = ssh(H, "awk '/^MemTotal:/ {print $2}' /proc/meminfo").trim().parse::<u64>().expect("MemTotal") / 1024;
    assert_ne!(mb, provision::host_facts::HostFacts::stand_in().memory_mb, "this case needs a host whose memory is not the stand-in's");
    assert_eq!(run(&p, cache, &[]).code, 0);
    assert_eq!(ssh(H, &format!("cat /srv/pv-facts/mb-{mb}")), "x\n");
    ssh(H, "rm -rf /srv/pv-facts");

    // An error found with assumed facts (the stand-ins' 2 GB fail this assert; the host has
    // more) is not the host's: the converge lowers it again with its own and goes on. With a
    // requirement the host does not meet, the host fails with the assert's message.
    p.write("roles/f/tasks.yml", "- assert: {that: \"facts.memory_mb >= 4096\", message: needs 4 GB}\n- file: {path: /srv/pv-facts, state: directory}\n");
    let fresh = tempfile::tempdir().expect("tempdir");
    let big = run(&p, fresh.path(), &["--format", "json"]);
    assert_eq!((big.code, big.changes()), (0, 1), "{}", big.all());
    p.write("roles/f/tasks.yml", "- assert: {that: \"facts.memory_mb >= 100000000\", message: needs 100 TB}\n- file: {path: /srv/pv-facts/never, state: directory}\n");
    let small = run(&p, tempfile::tempdir().expect("tempdir").path(), &[]);
    assert_eq!(small.code, 1, "{}", small.all());
    assert!(small.all().contains("needs 100 TB"), "{}", small.all());
    assert_eq!(ssh(H, "test -e /srv/pv-facts/never && echo made || echo absent"), "absent\n");
    ssh(H, "rm -rf /srv/pv-facts");

    // An unknown fact is an error naming it, before anything changes.
    p.write("roles/f/tasks.yml", "- file: {path: /srv/pv-facts, content: \"{{ facts.memroy_mb }}\\n\"}\n");
    let bad = run_provision(p.dir.path(), &["validate", "inventories/test.yml"], &[]);
    assert_eq!(bad.code, 1, "{}", bad.all());
    assert!(bad.stderr.contains("roles/f/tasks.yml:1:"), "{}", bad.all());
}
