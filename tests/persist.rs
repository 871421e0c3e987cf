//! Persistent SSH masters (`--persist SECONDS`, `ssh: {persist: ...}`) on testbed hosts: a
//! warm no-op run reuses the masters and is several times faster than a cold one; a host
//! whose key changed in known_hosts is still refused; the masters' directory must be the
//! user's own (else nothing is kept, and the run says why); a kept master whose network
//! connection hangs is replaced; and after the window no master is left running.

mod common;
use common::{testbed_dir, Project};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const HOSTS: [&str; 3] = ["t1", "t2", "t3"];

/// Runs provision in `p` with the persistent masters' directory under `runtime`.
fn run(p: &Project, runtime: &Path, args: &[&str]) -> (common::Run, f64) {
    let start = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_provision"))
        .current_dir(p.dir.path())
        .env("NO_COLOR", "1")
        .env("XDG_RUNTIME_DIR", runtime)
        .arg("inventories/test.yml")
        .args(args)
        .output()
        .expect("run provision");
    let secs = start.elapsed().as_secs_f64();
    let r = common::Run { code: o.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&o.stdout).into_owned(), stderr: String::from_utf8_lossy(&o.stderr).into_owned() };
    (r, secs)
}

/// The ssh masters whose control sockets are under `runtime`.
fn masters(runtime: &Path) -> Vec<String> {
    let out = Command::new("pgrep").args(["-af", &format!("ssh .*-S {}/", runtime.display())]).output().expect("pgrep");
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

/// The sshd processes serving root's sessions on t1 (not its listener), seen from this
/// machine: the container's processes are in its cgroup.
fn t1_root_sessions() -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cgroup = std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
        if cmdline.starts_with(b"sshd: root") && cgroup.contains("/pvtb/t1/") {
            out.push(pid);
        }
    }
    out
}

fn signal(pids: &[String], sig: &str) {
    let status = Command::new("kill").arg(format!("-{sig}")).args(pids).status().expect("kill");
    assert!(status.success(), "kill -{sig} {pids:?}");
}

fn best_of(n: usize, mut f: impl FnMut() -> f64) -> f64 {
    (0..n).map(|_| f()).fold(f64::MAX, f64::min)
}

#[test]
fn warm_runs_reuse_masters_safely_and_leave_nothing_after_the_window() {
    let _serial = common::serial();
    let runtime = tempfile::tempdir().expect("tempdir");
    let rt = runtime.path();
    let hosts: Vec<(&str, &[&str])> = HOSTS.iter().map(|h| (*h, &["r"][..])).collect();
    let p = Project::new(&hosts);
    let mut tasks = String::from("- file: {path: /srv/pv-persist, state: directory}\n");
    for i in 0..10 {
        tasks.push_str(&format!("- file: {{path: /srv/pv-persist/f{i}, content: \"{i}\\n\"}}\n"));
    }
    p.write("roles/r/tasks.yml", &tasks);
    let (first, _) = run(&p, rt, &[]);
    assert_eq!(first.code, 0, "{}", first.all());
    assert!(masters(rt).is_empty(), "a run without --persist leaves no master");

    // Cold: a handshake per host per run. Warm: the masters of the previous run.
    let cold = best_of(3, || {
        let (r, secs) = run(&p, rt, &["--format", "json"]);
        assert_eq!((r.code, r.changes()), (0, 0), "{}", r.all());
        secs
    });
    let (made, _) = run(&p, rt, &["--persist", "60", "-v"]);
    assert_eq!(made.code, 0, "{}", made.all());
    assert_eq!(masters(rt).len(), HOSTS.len(), "one master per host stays: {:?}", masters(rt));
    let warm = best_of(3, || {
        let (r, secs) = run(&p, rt, &["--persist", "60", "--format", "json"]);
        assert_eq!((r.code, r.changes()), (0, 0), "{}", r.all());
        for h in r.json()["hosts"].as_array().expect("hosts") {
            assert_eq!(h["round_trips"], 1, "a warm no-op is still one round trip: {h}");
        }
        secs
    });
    let (verbose, _) = run(&p, rt, &["--persist", "60", "-v"]);
    assert_eq!(verbose.all().matches("reused a persistent connection").count(), HOSTS.len(), "{}", verbose.all());
    let ratio = cold / warm;
    common::record(&format!("persist: {} hosts, cold no-op {cold:.3} s, warm no-op {warm:.3} s: {ratio:.1}x", HOSTS.len()));
    assert!(ratio >= 3.0, "a warm no-op run should be at least 3x faster than a cold one: cold {cold:.3} s, warm {warm:.3} s");

    // A host key that changed in known_hosts is refused even though a master is up: the
    // master's name includes the known_hosts content, so a new, strictly checked one is made.
    let known = std::fs::read_to_string(testbed_dir().join("known_hosts")).expect("known_hosts");
    let t1 = common::address("t1");
    let t2 = common::address("t2");
    let t2_key = known.lines().find(|l| l.split_whitespace().next().is_some_and(|h| h.split(',').any(|a| a == t2))).expect("t2's key");
    let key = t2_key.split_whitespace().skip(1).collect::<Vec<_>>().join(" ");
    let mut forged: Vec<String> = known.lines().filter(|l| !l.split_whitespace().next().is_some_and(|h| h.split(',').any(|a| a == t1))).map(str::to_string).collect();
    forged.push(format!("{t1} {key}"));
    p.write("known_hosts", &(forged.join("\n") + "\n"));
    let inv = std::fs::read_to_string(p.path("inventories/test.yml")).expect("inventory");
    let with_forged = inv.replace(&format!("known_hosts: {}", testbed_dir().join("known_hosts").display()), "known_hosts: ../known_hosts");
    assert_ne!(with_forged, inv);
    p.write("inventories/test.yml", &with_forged);
    let (refused, _) = run(&p, rt, &["--persist", "60", "--format", "json"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    let t1_report = &refused.json()["hosts"][0];
    assert!(t1_report["status"] == "failed" && t1_report["error"].as_str().unwrap_or("").contains("host key"), "t1 must be refused: {}", refused.all());
    p.write("inventories/test.yml", &inv);

    // The directory must be the user's own and closed to others.
    let dir = rt.join("provision-ssh");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let before = masters(rt).len();
    let (open, _) = run(&p, rt, &["--persist", "60", "-v"]);
    assert_eq!(open.code, 0, "the run goes on with connections of its own: {}", open.all());
    assert!(open.all().contains("is not a private directory"), "and says why nothing is kept: {}", open.all());
    assert_eq!(masters(rt).len(), before, "no master was made or used through it");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod");

    // A kept master whose connection hangs (the host's sshd for it stopped: a NAT timeout, a
    // suspended laptop) still answers `ssh -O check` locally; the run replaces it.
    let (warm, _) = run(&p, rt, &["--persist", "60", "--format", "json"]);
    assert_eq!(warm.code, 0, "{}", warm.all());
    let sessions = t1_root_sessions();
    assert!(!sessions.is_empty(), "the kept connection's sshd processes on t1");
    signal(&sessions, "STOP");
    let (replaced, _) = run(&p, rt, &["--persist", "60", "-v"]);
    signal(&sessions, "CONT");
    assert_eq!(replaced.code, 0, "{}", replaced.all());
    assert!(replaced.all().contains("the kept connection did not answer; connecting again"), "{}", replaced.all());

    // The window: masters end by themselves after their last use.
    for m in masters(rt) {
        let pid = m.split_whitespace().next().unwrap_or_default().to_string();
        let _ = Command::new("kill").arg(&pid).status();
    }
    let (short, _) = run(&p, rt, &["--persist", "2"]);
    assert_eq!(short.code, 0, "{}", short.all());
    assert_eq!(masters(rt).len(), HOSTS.len());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !masters(rt).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(masters(rt).is_empty(), "masters left after the window: {:?}", masters(rt));
    for h in HOSTS {
        common::ssh(h, "rm -rf /srv/pv-persist");
    }
}
