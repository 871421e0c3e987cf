//! Issue 12: the stack roles converge on Debian 13 (trixie) as they do on Debian 12.
//!
//! Five trixie hosts, brought up by the suite runner (this test brings up nothing):
//!
//!     tests/testbed.sh up --release trixie tx-web1=10.77.0.51 tx-app1=10.77.0.52 \
//!         tx-worker1=10.77.0.53 tx-db1=10.77.0.54 tx-db2=10.77.0.55
//!
//! A project with the repository's roles and the sandbox's variables (inventories/sandbox.yml
//! with its hosts replaced by these five) is bootstrapped as stack.rs does it: root with the
//! testbed key -> an admin with sudo, root keeping key login (the sandbox's choice) for the
//! read-backs. Then, as the admin: nginx, redis, MariaDB primary + replica, puma and sidekiq
//! with examples/flipper, read back through the stack, and a second converge changes
//! nothing (asserted on its JSON report). Traffic goes only to those 10.77.0.x addresses.

mod common;
use common::wait_for;
use common::record;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const HOSTS: [(&str, &str, &str); 5] = [
    ("tx-web1", "10.77.0.51", "[common, nginx]"),
    ("tx-app1", "10.77.0.52", "[common, example_release, puma]"),
    ("tx-worker1", "10.77.0.53", "[common, redis, example_release, sidekiq]"),
    ("tx-db1", "10.77.0.54", "[common, mysql]\n    primary: true"),
    ("tx-db2", "10.77.0.55", "[common, mysql]"),
];
const WEB: &str = "10.77.0.51";
const DB_NAME: &str = "flipper_sandbox";
const ROLES: [&str; 12] = ["stack", "app", "common", "firewall", "nginx", "redis", "mysql", "puma", "sidekiq", "example_release", "bootstrap", "bootstrap-ssh"];

fn state_dir() -> PathBuf {
    common::testbed_dir()
}

fn addr(name: &str) -> &'static str {
    HOSTS.iter().find(|(n, _, _)| *n == name).map(|(_, a, _)| *a).unwrap()
}

/// Runs `cmd` on `host` as `user` with the testbed key (strict host keys); (code, stdout, stderr).
fn ssh_as(user: &str, host: &str, cmd: &str) -> (i32, String, String) {
    let st = state_dir();
    let o: Output = Command::new("ssh")
        .args(["-i", &st.join("id_ed25519").to_string_lossy()])
        .args(["-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
        .args(["-o", &format!("UserKnownHostsFile={}", st.join("known_hosts").display())])
        .args(["-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"])
        .arg(format!("{user}@{}", addr(host)))
        .arg(cmd)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run ssh");
    let s = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    (o.status.code().unwrap_or(-1), s(&o.stdout), s(&o.stderr))
}

/// `cmd` on `host` as root; its stdout, failing the test when it fails.
fn sh(host: &str, cmd: &str) -> String {
    let (code, out, err) = ssh_as("root", host, cmd);
    assert_eq!(code, 0, "on {host}: `{cmd}` exited {code}\nstdout: {out}\nstderr: {err}");
    out
}

/// One HTTP/1.0 request to port 80 of a testbed address; (status, body).
fn http(host: &str, method: &str, path: &str) -> Result<(u16, String), String> {
    assert!(host.starts_with("10.77.0."), "test traffic goes to testbed addresses only");
    let sa: SocketAddr = format!("{host}:80").parse().unwrap();
    let mut s = TcpStream::connect_timeout(&sa, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let body = if method == "POST" { "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\n" } else { "" };
    s.write_all(format!("{method} {path} HTTP/1.0\r\nHost: {host}\r\n{body}\r\n").as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| format!("no HTTP status in {text:?}"))?;
    Ok((status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()))
}

fn json_str(body: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":\"");
    let i = body.find(&pat)? + pat.len();
    Some(body[i..].split('"').next()?.to_string())
}

struct Run {
    code: i32,
    stdout: String,
    out: String,
    secs: f64,
}

/// `provision ARGS` in the project, with its own facts cache (so the first converge starts
/// from the stand-in facts, a Debian 12 host, as on a fresh controller).
fn provision(project: &Path, cache: &Path, args: &[&str]) -> Run {
    let start = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_provision"))
        .current_dir(project)
        .args(args)
        .env("NO_COLOR", "1")
        .env("XDG_CACHE_HOME", cache)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run the provision binary");
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let out = format!("{stdout}{}", String::from_utf8_lossy(&o.stderr));
    Run { code: o.status.code().unwrap_or(-1), stdout, out, secs: start.elapsed().as_secs_f64() }
}

/// inventories/sandbox.yml's settings (stage, ssh, vars: the passwords of every printable
/// character, the testbed key for admin and deploy, root's key login kept) with the five
/// trixie hosts instead of the sandbox's.
fn inventory() -> String {
    let sandbox = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("inventories/sandbox.yml")).expect("inventories/sandbox.yml");
    let head = &sandbox[..sandbox.find("\nhosts:\n").expect("sandbox.yml has hosts:") + 1];
    // Plain HTTP here, read with a TcpStream: the sandbox's HTTPS is tests/stack.rs's.
    let head = head.replace("nginx_tls: self_signed", "nginx_tls: \"off\"");
    // flipper here (example_release places it): shop's Gemfile.lock is Debian 12's.
    let head = head.replace("  app: shop\n", "  app: flipper\n").replace("  sidekiq_require: .\n", "");
    let mut inv = format!("# tests/trixie.rs: the sandbox's settings on the Debian 13 hosts.\n{head}hosts:\n");
    for (name, a, roles) in HOSTS {
        inv.push_str(&format!("  {name}:\n    address: {a}\n    user: admin\n    roles: {roles}\n"));
    }
    inv
}

fn preflight() {
    let missing: Vec<String> = HOSTS.iter().filter(|(n, _, _)| ssh_as("root", n, "true").0 != 0).map(|(n, a, _)| format!("{n}={a}")).collect();
    assert!(
        missing.is_empty(),
        "trixie testbed hosts not reachable over ssh: {}.\nBring them up first (as root):\n  tests/testbed.sh up --release trixie {}",
        missing.join(" "),
        HOSTS.iter().map(|(n, a, _)| format!("{n}={a}")).collect::<Vec<_>>().join(" ")
    );
    os_release_says_13("before");
}

/// /etc/os-release of every host says Debian 13, trixie.
fn os_release_says_13(when: &str) {
    for (n, _, _) in HOSTS {
        let os = sh(n, ". /etc/os-release && printf '%s %s %s' \"$ID\" \"$VERSION_ID\" \"$VERSION_CODENAME\"");
        assert_eq!(os, "debian 13 trixie", "{n} ({when}): /etc/os-release");
        if when != "before" {
            // The common role's firewall is in force on Debian 13's nftables too.
            assert!(sh(n, "nft list chain inet provision input").contains("policy drop;"), "{n}: no firewall");
        }
    }
}

/// `provision bootstrap` as root: the admin logs in with the testbed key and has sudo; sshd
/// (trixie's, through the same drop-in directory) allows root by key only, no passwords.
fn bootstrap(project: &Path, cache: &Path) {
    let boot = provision(project, cache, &["bootstrap", "inventories/trixie.yml", "-v"]);
    record(&format!("trixie: bootstrap of 5 hosts: {:.1}s, exit {}", boot.secs, boot.code));
    assert_eq!(boot.code, 0, "provision bootstrap:\n{}", boot.out);
    for (n, _, _) in HOSTS {
        let (code, out, err) = ssh_as("admin", n, "id -un && sudo -n id -un && sudo -n sshd -T");
        assert_eq!(code, 0, "{n}: admin login with `sudo -n`: {out}{err}");
        assert!(out.starts_with("admin\nroot\n"), "{n}: the admin and sudo: {out}");
        let setting = |key: &str| out.lines().find_map(|l| l.strip_prefix(&format!("{key} "))).unwrap_or("").to_string();
        assert!(["without-password", "prohibit-password"].contains(&setting("permitrootlogin").as_str()), "{n}: sshd -T permitrootlogin {:?}", setting("permitrootlogin"));
        assert_eq!(setting("passwordauthentication"), "no", "{n}: sshd -T passwordauthentication");
        assert_eq!(setting("kbdinteractiveauthentication"), "no", "{n}: sshd -T kbdinteractiveauthentication");
    }
    let again = provision(project, cache, &["bootstrap", "inventories/trixie.yml"]);
    assert!(again.code == 0 && again.out.contains("; 0 changes"), "a second bootstrap changed something:\n{}", again.out);
}

/// The app answers through nginx on tx-web1, served by puma on tx-app1.
fn app_through_nginx() {
    let (status, body) = wait_for(30, "GET / through tx-web1", || http(WEB, "GET", "/").ok().filter(|(s, _)| *s == 200));
    assert_eq!((status, body.trim()), (200, "tx-app1"), "GET / through tx-web1");
    let (status, body) = http(WEB, "GET", "/up").expect("GET /up");
    assert_eq!((status, body.trim()), (200, "up"));
    assert!(sh("tx-web1", "nginx -T 2>/dev/null").contains("server 10.77.0.52:3000 fail_timeout=0;"), "nginx -T lacks the upstream tx-app1");
    assert_eq!(sh("tx-app1", "ss -ltnH 'sport = :3000' | awk '{print $4}'"), "10.77.0.52:3000", "puma's socket");
    let props = sh("tx-app1", "systemctl show -p ActiveState,Type,WatchdogUSec puma");
    assert!(props.contains("ActiveState=active") && props.contains("Type=notify") && props.contains("WatchdogUSec=10s"), "puma:\n{props}");
}

/// sidekiq is active (Type=notify: systemd waited for its READY) and runs a job posted through
/// nginx; the job's row, written on the primary, appears on the replica.
fn job_row_on_primary_and_replica() {
    let props = sh("tx-worker1", "systemctl show -p ActiveState,Type,NotifyAccess,UnitFileState sidekiq");
    for want in ["ActiveState=active", "Type=notify", "NotifyAccess=all", "UnitFileState=enabled"] {
        assert!(props.contains(want), "sidekiq lacks {want}:\n{props}");
    }
    let (status, body) = http(WEB, "POST", "/jobs").expect("POST /jobs");
    assert_eq!(status, 202, "POST /jobs through tx-web1: {body}");
    let jid = json_str(&body, "id").unwrap_or_else(|| panic!("no job id in {body}"));
    let body = wait_for(60, &format!("job {jid} to run"), || match http(WEB, "GET", &format!("/jobs/{jid}")) {
        Ok((200, b)) => Some(b),
        _ => None,
    });
    assert_eq!(json_str(&body, "worker").as_deref(), Some("tx-worker1"), "job {jid}: {body}");
    let q = format!("mariadb -NBe \"SELECT worker FROM {DB_NAME}.jobs WHERE jid = '{jid}'\"");
    assert_eq!(sh("tx-db1", &q), "tx-worker1", "row of job {jid} on the primary");
    wait_for(60, &format!("row of job {jid} on the replica"), || (ssh_as("root", "tx-db2", &q).1 == "tx-worker1").then_some(()));
    let status = sh("tx-db2", "mariadb -e 'SHOW REPLICA STATUS\\G'");
    assert!(status.contains("Slave_IO_Running: Yes") && status.contains("Slave_SQL_Running: Yes"), "tx-db2:\n{status}");
    assert_eq!(sh("tx-db2", "mariadb -NBe 'SELECT @@read_only'"), "1");
}

/// What trixie gave the stack, for the record.
fn versions() -> String {
    let v = |h: &str, cmd: &str| ssh_as("root", h, cmd).1.lines().next().unwrap_or("?").to_string();
    format!(
        "nginx {}, puma {}, sidekiq {}, redis {}, MariaDB {}",
        v("tx-web1", "dpkg-query -W -f='${Version}' nginx"),
        v("tx-app1", "dpkg-query -W -f='${Version}' puma"),
        v("tx-worker1", "dpkg-query -W -f='${Version}' ruby-sidekiq"),
        v("tx-worker1", "dpkg-query -W -f='${Version}' redis-server"),
        v("tx-db1", "mariadb -NBe 'SELECT VERSION()'"),
    )
}

#[test]
fn stack_converges_on_trixie() {
    preflight();
    let project = common::Project::new(&[]);
    for r in ROLES {
        project.copy_role(r);
    }
    project.write("inventories/trixie.yml", &inventory());
    let cache = tempfile::tempdir().expect("tempdir");
    let dir = project.dir.path();
    bootstrap(dir, cache.path());

    let first = provision(dir, cache.path(), &["inventories/trixie.yml", "-v"]);
    record(&format!("trixie: first converge of 5 hosts: {:.1}s, exit {}", first.secs, first.code));
    assert_eq!(first.code, 0, "first converge on trixie:\n{}", first.out);
    app_through_nginx();
    job_row_on_primary_and_replica();
    os_release_says_13("after");
    record(&format!("trixie: {}", versions()));

    // A second converge changes nothing, and with the facts kept from the first it probes
    // each host once.
    let second = provision(dir, cache.path(), &["inventories/trixie.yml", "--format", "json"]);
    record(&format!("trixie: second converge: {:.1}s, exit {}", second.secs, second.code));
    assert_eq!(second.code, 0, "second converge:\n{}", second.out);
    let report: serde_json::Value = serde_json::from_str(&second.stdout).unwrap_or_else(|e| panic!("no JSON report ({e}):\n{}", second.out));
    assert_eq!(report["mode"], "apply");
    assert_eq!(report["summary"]["changes"], 0, "the second converge changed something:\n{}", second.stdout);
    assert_eq!(report["summary"]["ok"], HOSTS.len(), "{}", second.stdout);
    let hosts = report["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), HOSTS.len());
    for h in hosts {
        assert_eq!(h["status"], "ok", "{}: {h}", h["host"]);
        assert_eq!(h["changes"].as_array().map(Vec::len), Some(0), "{}: {h}", h["host"]);
        assert_eq!(h["round_trips"], 1, "{} took more than one round trip", h["host"]);
    }
}
