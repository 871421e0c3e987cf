//! 500 simulated hosts (`tests/testbed.sh sim`, an sshd per network namespace) come up and
//! go down cleanly, and a no-op run over them makes exactly one round trip per host.
//!
//! The test brings the simulated hosts up itself and down at the end (also when it fails:
//! a guard runs `sim down`; `tests/testbed.sh down` in tests/run.sh's teardown does too),
//! so the rest of the suite never pays for them. The workload is the scale bench's:
//! 25 file, directory and link resources per host under its own `/srv/sim/NAME`
//! (bench/scale_sim/provision/roles/simwork). Simulated hosts share this machine's
//! filesystem, so what provision wrote is read back from the disk directly. No absolute
//! time is asserted; the run times are recorded as measurements only.

mod common;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const HOSTS: usize = 500;
const RESOURCES: usize = 25;
/// Hosts worked on at once. The default (20) is for real fleets; here every handshake runs
/// on this machine's cores, and 50 keeps them busy without queueing hundreds of
/// handshakes on two cores.
const FORKS: &str = "50";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn testbed(args: &[&str]) -> std::process::Output {
    Command::new(repo().join("tests/testbed.sh")).args(args).output().expect("tests/testbed.sh runs")
}

fn all(o: &std::process::Output) -> String {
    format!("--- stdout\n{}\n--- stderr\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Takes the simulated hosts down when the test ends, also by a panic.
struct Sim;
impl Drop for Sim {
    fn drop(&mut self) {
        let _ = testbed(&["sim", "down"]);
    }
}

/// Issue 14's warm runs, on 20 of the simulated hosts: a no-op that reuses the persistent
/// masters (`--persist`) against one that logs in to every host, best of three each; then,
/// after a short window, no master is left running.
fn warm_runs_at_twenty_hosts(project: &Path) {
    const N: usize = 20;
    let runtime = tempfile::tempdir().expect("tempdir");
    let inv = testbed(&["sim", "inventory", &N.to_string(), "simwork"]);
    assert!(inv.status.success(), "sim inventory: {}", all(&inv));
    std::fs::write(project.join("inventories/sim20.yml"), &inv.stdout).expect("write inventory");
    let run = |extra: &[&str]| {
        let t = Instant::now();
        let o = Command::new(env!("CARGO_BIN_EXE_provision"))
            .current_dir(project)
            .env("NO_COLOR", "1")
            .env("XDG_RUNTIME_DIR", runtime.path())
            .args(["inventories/sim20.yml", "--forks", "20", "--format", "json"])
            .args(extra)
            .output()
            .expect("run provision");
        let secs = t.elapsed().as_secs_f64();
        assert!(o.status.success(), "{}", all(&o));
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON report");
        assert_eq!(j["summary"]["hosts"], N);
        assert_eq!(j["summary"]["changes"], 0, "{}", j["summary"]);
        secs
    };
    let masters = || {
        let o = Command::new("pgrep").args(["-f", &format!("ssh .*-S {}/", runtime.path().display())]).output().expect("pgrep");
        String::from_utf8_lossy(&o.stdout).lines().count()
    };
    let best = |extra: &[&str]| (0..3).map(|_| run(extra)).fold(f64::MAX, f64::min);
    let cold = best(&[]);
    run(&["--persist", "60"]);
    // One kept master per host. (Seen once in CI: 19 of 20 counted right after the run; a
    // master that ended is replaced by the next run, so the reuse itself is asserted below.)
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while masters() != N && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    if masters() != N {
        eprintln!("note: {} of {N} kept masters right after the first --persist run", masters());
    }
    let warm = best(&["--persist", "60"]);
    // Every host's connection was reused by the last warm run.
    let o = Command::new(env!("CARGO_BIN_EXE_provision"))
        .current_dir(project)
        .env("NO_COLOR", "1")
        .env("XDG_RUNTIME_DIR", runtime.path())
        .args(["inventories/sim20.yml", "--forks", "20", "--persist", "60", "-v"])
        .output()
        .expect("run provision");
    let text = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{text}");
    assert_eq!(text.matches("reused a persistent connection").count(), N, "every host reuses its master:\n{text}");
    assert_eq!(masters(), N, "one kept master per host");
    let ratio = cold / warm;
    common::record(&format!("sim: warm runs at {N} hosts: cold no-op {cold:.2} s, warm no-op {warm:.2} s: {ratio:.1}x"));
    assert!(ratio >= 3.0, "a warm no-op at {N} hosts should be at least 3x faster than a cold one: cold {cold:.2} s, warm {warm:.2} s");
    // The window: after a run with a 2 s window, the masters end by themselves.
    let _ = Command::new("pkill").args(["-f", &format!("ssh .*-S {}/", runtime.path().display())]).status();
    run(&["--persist", "2"]);
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while masters() > 0 && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_eq!(masters(), 0, "masters left after the window");
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

#[test]
fn five_hundred_simulated_hosts_one_round_trip_each_and_nothing_left() {
    let _sim = Sim;
    // A crashed earlier run's hosts would count as "already up": start clean.
    let down = testbed(&["sim", "down"]);
    assert!(down.status.success(), "sim down: {}", all(&down));
    let t = Instant::now();
    let up = testbed(&["sim", "up", &HOSTS.to_string()]);
    assert!(up.status.success(), "sim up {HOSTS}: {}", all(&up));
    let up_secs = t.elapsed().as_secs_f64();

    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(repo().join("bench/scale_sim/provision/roles"), dir.path().join("roles")).expect("link roles");
    std::fs::create_dir_all(dir.path().join("inventories")).expect("mkdir");
    let inv = testbed(&["sim", "inventory", &HOSTS.to_string(), "simwork"]);
    assert!(inv.status.success(), "sim inventory: {}", all(&inv));
    std::fs::write(dir.path().join("inventories/sim.yml"), &inv.stdout).expect("write inventory");
    let run = |extra: &[&str]| {
        let mut args = vec!["--forks", FORKS, "--format", "json"];
        args.extend_from_slice(extra);
        common::run_provision(dir.path(), &["inventories/sim.yml"], &args)
    };

    let t = Instant::now();
    let apply = run(&[]);
    let apply_secs = t.elapsed().as_secs_f64();
    assert_eq!(apply.code, 0, "apply on {HOSTS} simulated hosts: {}", apply.all());
    let j = apply.json();
    assert_eq!(j["summary"]["changed"], HOSTS, "every host changed: {}", j["summary"]);
    assert_eq!(j["summary"]["changes"], HOSTS * RESOURCES, "{RESOURCES} changes a host: {}", j["summary"]);

    let t = Instant::now();
    let noop = run(&[]);
    let noop_secs = t.elapsed().as_secs_f64();
    assert_eq!(noop.code, 0, "no-op on {HOSTS} simulated hosts: {}", noop.all());
    let j = noop.json();
    let hosts = j["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), HOSTS);
    for h in hosts {
        assert_eq!(h["round_trips"], 1, "a no-op is one round trip per host: {h}");
        assert_eq!(h["status"], "ok", "{h}");
        assert_eq!(h["changes"].as_array().map(Vec::len), Some(0), "{h}");
    }
    assert_eq!(j["summary"]["changes"], 0, "{}", j["summary"]);

    // Read back from the shared filesystem: each host wrote its own tree, with its own name.
    for name in ["s1", "s250", &format!("s{HOSTS}")] {
        let root = format!("/srv/sim/{name}");
        assert!(read(&format!("{root}/etc/app.conf")).contains(&format!("name = {name}\n")), "{root}/etc/app.conf");
        assert_eq!(read(&format!("{root}/etc/hostname")), format!("{name}\n"));
        assert_eq!(read(&format!("{root}/etc/conf.d/07.conf")), format!("# drop-in 07 of {name}\nsetting_07 = 07\n"));
        let mode = |p: &str| std::fs::metadata(format!("{root}{p}")).expect("stat").permissions().mode() & 0o7777;
        assert_eq!(mode("/var/data/token"), 0o600);
        assert_eq!(mode("/var/data"), 0o700);
        assert_eq!(mode("/bin/run"), 0o755);
        assert_eq!(std::fs::read_link(format!("{root}/current")).expect("readlink"), Path::new(&format!("{root}/releases")));
    }

    common::record(&format!(
        "sim: {HOSTS} simulated hosts up in {up_secs:.0} s; {RESOURCES} resources each, --forks {FORKS}: apply {apply_secs:.1} s, no-op {noop_secs:.1} s (1 round trip per host); no-op/apply {:.2}",
        noop_secs / apply_secs
    ));

    warm_runs_at_twenty_hosts(dir.path());

    let down = testbed(&["sim", "down"]);
    assert!(down.status.success(), "sim down: {}", all(&down));
    let check = Command::new(repo().join("tests/testbed_down_check.sh")).arg("--sim").output().expect("down check runs");
    assert!(check.status.success(), "sim down left something behind: {}", all(&check));
    assert!(!Path::new("/srv/sim").exists(), "/srv/sim is left");
}
