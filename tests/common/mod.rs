//! Shared helpers for the end-to-end tests: the testbed's hosts, a throwaway project
//! (inventory + roles) to run provision on, and ssh to read hosts back.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

/// Prints a measurement and keeps it for the suite's summary (tests/run.sh prints the
/// file at the end: cargo hides a passing test's output).
pub fn record(line: &str) {
    use std::io::Write;
    println!("{line}");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("measurements.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}

/// The testbed's state directory.
pub fn testbed_dir() -> PathBuf {
    PathBuf::from(std::env::var("PROVISION_TESTBED").unwrap_or_else(|_| "/var/lib/provision-testbed".into()))
}

/// The address of testbed host `name`, read from the inventory the testbed generated.
/// Panics with a clear message when the testbed is not up: these tests need real hosts.
pub fn address(name: &str) -> String {
    let inv = testbed_dir().join("inventory.yml");
    let text = std::fs::read_to_string(&inv)
        .unwrap_or_else(|e| panic!("cannot read {} ({e}): bring the testbed up first (tests/run.sh does)", inv.display()));
    let mut in_host = false;
    for line in text.lines() {
        let t = line.trim();
        if line.starts_with("  ") && !line.starts_with("    ") {
            in_host = t.trim_end_matches(':') == name;
        } else if in_host {
            if let Some(a) = t.strip_prefix("address:") {
                return a.trim().to_string();
            }
        }
    }
    panic!("testbed host `{name}` is not in {}; tests/run.sh brings up t1 t2 t3", inv.display())
}

/// Runs `cmd` on testbed host `name` as root over ssh (strict host keys), returning stdout.
pub fn ssh(name: &str, cmd: &str) -> String {
    let out = ssh_output(name, cmd);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn ssh_output(name: &str, cmd: &str) -> Output {
    let dir = testbed_dir();
    Command::new("ssh")
        .args(["-i", &dir.join("id_ed25519").to_string_lossy()])
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", dir.join("known_hosts").display()))
        .arg(format!("root@{}", address(name)))
        .arg(cmd)
        .output()
        .expect("ssh runs")
}

/// Whether `from` can open a TCP connection to `to`:`port` (3 s).
pub fn reaches(from: &str, to: &str, port: u16) -> bool {
    let out = ssh_output(from, &format!("timeout 3 bash -c 'exec 3<>/dev/tcp/{}/{port}' && echo open || echo closed", address(to)));
    String::from_utf8_lossy(&out.stdout).trim() == "open"
}

/// Polls `f` every 500 ms until it returns Some, or fails with `what` after `secs`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out after {secs}s waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// Tests that converge the same hosts must not overlap: a second run on a host waits for
/// nothing, it fails on the host's lock.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A throwaway project: `inventories/test.yml` and `roles/`.
pub struct Project {
    pub dir: tempfile::TempDir,
}

/// What one provision run printed.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", self.stdout, self.stderr))
    }
    /// (kind, target, action) of every change in a JSON report, in order, per host.
    pub fn change_ids(&self) -> Vec<(String, String, String, String)> {
        let j = self.json();
        let mut out = Vec::new();
        for h in j["hosts"].as_array().into_iter().flatten() {
            for c in h["changes"].as_array().into_iter().flatten() {
                out.push((
                    h["host"].as_str().unwrap_or_default().to_string(),
                    c["kind"].as_str().unwrap_or_default().to_string(),
                    c["target"].as_str().unwrap_or_default().to_string(),
                    c["action"].as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        out
    }
    pub fn changes(&self) -> usize {
        self.json()["summary"]["changes"].as_u64().unwrap_or(u64::MAX) as usize
    }
    pub fn all(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }
}

impl Project {
    /// A project whose inventory lists `hosts` as (testbed host name, roles).
    pub fn new(hosts: &[(&str, &[&str])]) -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("inventories")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("roles")).expect("mkdir");
        let p = Project { dir };
        p.inventory(hosts, "");
        p
    }

    /// Rewrites the inventory; `extra` is appended (for `vars:`).
    pub fn inventory(&self, hosts: &[(&str, &[&str])], extra: &str) {
        let tb = testbed_dir();
        let mut inv = format!(
            "stage: test\nssh:\n  identity_file: {}\n  known_hosts: {}\nhosts:\n",
            tb.join("id_ed25519").display(),
            tb.join("known_hosts").display()
        );
        for (name, roles) in hosts {
            let addr = if name.starts_with("unreachable") { "127.0.0.1\n    port: 9".to_string() } else { address(name) };
            inv.push_str(&format!("  {name}:\n    address: {addr}\n    roles: [{}]\n", roles.join(", ")));
        }
        inv.push_str(extra);
        self.write("inventories/test.yml", &inv);
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    /// Copies the repository's roles/NAME into the project, as it is.
    pub fn copy_role(&self, name: &str) {
        fn copy_dir(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).expect("mkdir");
            for e in std::fs::read_dir(from).expect("read_dir").flatten() {
                let dest = to.join(e.file_name());
                if e.path().is_dir() {
                    copy_dir(&e.path(), &dest);
                } else {
                    std::fs::copy(e.path(), dest).expect("copy");
                }
            }
        }
        copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("roles").join(name), &self.path(&format!("roles/{name}")));
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs provision on the project's inventory with `args`.
    pub fn run(&self, args: &[&str]) -> Run {
        run_provision(self.dir.path(), &["inventories/test.yml"], args)
    }

    /// Runs the provision binary `bin` on the project's inventory with `args`.
    pub fn run_with(&self, bin: &Path, args: &[&str]) -> Run {
        run_binary(bin, self.dir.path(), &["inventories/test.yml"], args)
    }
}

/// Runs the provision binary in `dir`.
pub fn run_provision(dir: &Path, first: &[&str], args: &[&str]) -> Run {
    run_binary(Path::new(env!("CARGO_BIN_EXE_provision")), dir, first, args)
}

/// Runs the provision binary `bin` (the debug build cargo made for the tests, or another
/// build of it) in `dir`.
pub fn run_binary(bin: &Path, dir: &Path, first: &[&str], args: &[&str]) -> Run {
    let out = Command::new(bin)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args(first)
        .args(args)
        .output()
        .expect("provision runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
