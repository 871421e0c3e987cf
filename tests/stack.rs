//! End to end: the whole Rails stack (roles/ + inventories/sandbox.yml + examples/shop, a Rails app)
//! provisioned onto real testbed hosts, then every claim of issue 4's "Must show" checked
//! by reading the hosts back.
//!
//! The way a newcomer gets there (issue 15): `provision init` run outside this repository
//! writes the project (the roles built into the binary), inventories/sandbox.yml is copied
//! in (that is "pointed at the testbed's hosts"), `provision bootstrap` takes the fresh hosts
//! from root with a key to an admin with sudo, and every converge runs from that project,
//! connecting as the admin through `sudo -n`. The read-backs log in as root with the
//! testbed key, which the sandbox alone keeps allowed (`sshd_permit_root_login`).
//!
//! The hosts must already be up (the suite runner does it):
//!
//!     tests/testbed.sh up web1=10.77.0.21 app1=10.77.0.22 app2=10.77.0.23 worker1=10.77.0.24 \
//!         db1=10.77.0.25 db2=10.77.0.26 faye1=10.77.0.27
//!
//! Traffic goes only to those 10.77.0.x testbed addresses. std only: ssh and the
//! provision binary through std::process::Command, HTTPS through curl (tests/stack/web.rs).

mod common;
use common::wait_for;
#[path = "stack/network.rs"]
mod network;
#[path = "stack/web.rs"]
mod web;
use common::record;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

const STATE: &str = "/var/lib/provision-testbed";
const HOSTS: [(&str, &str); 7] = [
    ("web1", "10.77.0.21"),
    ("app1", "10.77.0.22"),
    ("app2", "10.77.0.23"),
    ("worker1", "10.77.0.24"),
    ("db1", "10.77.0.25"),
    ("db2", "10.77.0.26"),
    ("faye1", "10.77.0.27"),
];
const WEB: &str = "10.77.0.21";
const DB_NAME: &str = "shop_sandbox";

/// The sandbox's database passwords (inventories/sandbox.yml): every printable ASCII
/// character, and the same reversed for replication.
fn app_password() -> String {
    (0x21u8..0x7f).map(char::from).collect()
}
fn replication_password() -> String {
    app_password().chars().rev().collect()
}

/// No piece of either password (any 12 characters in a row) is in `out`.
fn assert_no_password_part(what: &str, out: &str) {
    for pw in [app_password(), replication_password()] {
        let chars: Vec<char> = pw.chars().collect();
        for w in chars.windows(12) {
            let piece: String = w.iter().collect();
            assert!(!out.contains(&piece), "{what} shows part of a password ({piece:?}):\n{out}");
        }
    }
}

/// `s` single-quoted for sh.
fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

fn addr(name: &str) -> &'static str {
    HOSTS.iter().find(|(n, _)| *n == name).map(|(_, a)| *a).unwrap()
}

fn state_dir() -> PathBuf {
    PathBuf::from(std::env::var("PROVISION_TESTBED").unwrap_or_else(|_| STATE.to_string()))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The provision binary: $PROVISION_BIN, else the one cargo built for this test.
fn provision_bin() -> PathBuf {
    std::env::var_os("PROVISION_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_provision")))
}

/// The project every converge runs from: written by `provision init` outside this
/// repository, with inventories/sandbox.yml copied in (set by [`init_and_bootstrap`]).
static PROJECT: OnceLock<PathBuf> = OnceLock::new();

fn project() -> &'static Path {
    PROJECT.get().expect("init_and_bootstrap makes the project first")
}

struct Run {
    code: i32,
    out: String,
    secs: f64,
}

/// `provision inventories/sandbox.yml ARGS`, in the init'ed project.
fn provision(args: &[&str]) -> Run {
    let mut all = vec!["inventories/sandbox.yml"];
    all.extend_from_slice(args);
    provision_in(project(), &all)
}

/// `provision ARGS` (the built binary) with `dir` as the current directory.
fn provision_in(dir: &Path, args: &[&str]) -> Run {
    let start = Instant::now();
    let o = Command::new(provision_bin())
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("cannot run the provision binary");
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    Run { code: o.status.code().unwrap_or(-1), out, secs: start.elapsed().as_secs_f64() }
}

fn ssh_raw(host: &str, cmd: &str) -> Output {
    ssh_as("root", host, cmd)
}

/// Runs `cmd` on `host` as `user`, logging in with the testbed key.
fn ssh_as(user: &str, host: &str, cmd: &str) -> Output {
    let st = state_dir();
    Command::new("ssh")
        .args(["-i", &st.join("id_ed25519").to_string_lossy()])
        .args(["-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
        .args(["-o", &format!("UserKnownHostsFile={}", st.join("known_hosts").display())])
        .args(["-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"])
        .arg(format!("{user}@{}", addr(host)))
        .arg(cmd)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run ssh")
}

/// Runs `cmd` on `host` as root; (exit code, stdout, stderr).
fn ssh(host: &str, cmd: &str) -> (i32, String, String) {
    let o = ssh_raw(host, cmd);
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).trim().to_string(), String::from_utf8_lossy(&o.stderr).trim().to_string())
}

/// Runs `cmd` on `host` and returns its stdout, failing the test if it fails.
fn sh(host: &str, cmd: &str) -> String {
    let (code, out, err) = ssh(host, cmd);
    assert_eq!(code, 0, "on {host}: `{cmd}` exited {code}\nstdout: {out}\nstderr: {err}");
    out
}

/// One request to web1 (HTTPS, see tests/stack/web.rs); (status, body).
fn http(host: &str, method: &str, path: &str, body: Option<(&str, &str)>) -> Result<(u16, String), String> {
    assert_eq!(host, WEB, "the stack's requests go through web1");
    web::http(method, path, body)
}

fn json_str(body: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":\"");
    let i = body.find(&pat)? + pat.len();
    Some(body[i..].split('"').next()?.to_string())
}

fn main_pid(host: &str, unit: &str) -> u32 {
    sh(host, &format!("systemctl show -p MainPID --value {unit}")).parse().unwrap_or(0)
}

fn wait_active(host: &str, unit: &str, secs: u64) {
    wait_for(secs, &format!("{unit} active on {host}"), || {
        let (_, out, _) = ssh(host, &format!("systemctl is-active {unit}"));
        (out == "active").then_some(())
    });
}

// ------------------------------------------------------------------ the steps

fn preflight() {
    let missing: Vec<String> = HOSTS
        .iter()
        .filter(|(n, _)| ssh_raw(n, "true").status.code() != Some(0))
        .map(|(n, a)| format!("{n}={a}"))
        .collect();
    assert!(
        missing.is_empty(),
        "testbed hosts not reachable over ssh: {}.\nBring them up first (as root):\n  tests/testbed.sh up {}",
        missing.join(" "),
        HOSTS.iter().map(|(n, a)| format!("{n}={a}")).collect::<Vec<_>>().join(" ")
    );
}

/// Issue 15, must show 1: a project from `provision init` alone (run from a directory outside
/// this repository, the built binary), pointed at the testbed's hosts, validates; `provision
/// bootstrap` takes the fresh hosts to an admin who logs in with the testbed key and has
/// sudo, with root's password login off; a second bootstrap changes nothing. Every converge
/// after this one runs from that project.
fn init_and_bootstrap(elsewhere: &Path) {
    let init = provision_in(elsewhere, &["init", "sandbox-project"]);
    assert_eq!(init.code, 0, "provision init:\n{}", init.out);
    let dir = elsewhere.join("sandbox-project");
    assert!(!dir.join("Cargo.toml").exists() && dir.join("roles/example_release/files/config.ru").is_file(), "init wrote no project of its own");
    std::fs::copy(root().join("inventories/sandbox.yml"), dir.join("inventories/sandbox.yml")).expect("copy inventories/sandbox.yml");
    PROJECT.set(dir.clone()).expect("one project");
    let valid = provision_in(&dir, &["validate", "inventories/sandbox.yml"]);
    assert_eq!(valid.code, 0, "provision validate of the init'ed project's sandbox inventory:\n{}", valid.out);

    let boot = provision_in(&dir, &["bootstrap", "inventories/sandbox.yml", "-v"]);
    record(&format!("stack: bootstrap of the sandbox from an init'ed project: {:.1}s, exit {}", boot.secs, boot.code));
    assert_eq!(boot.code, 0, "provision bootstrap:\n{}", boot.out);
    assert_no_password_part("bootstrap", &boot.out);
    for (n, _) in HOSTS {
        // The admin logs in with the testbed key and becomes root without a password.
        let o = ssh_as("admin", n, "id -un && sudo -n id -un && sudo -n sshd -T");
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(o.status.success(), "{n}: admin login with `sudo -n`: {}{}", out, String::from_utf8_lossy(&o.stderr));
        assert!(out.starts_with("admin\nroot\n"), "{n}: the admin and sudo: {out}");
        // Root: key login only (the sandbox's choice, for the read-backs), no passwords.
        let setting = |key: &str| out.lines().find_map(|l| l.strip_prefix(&format!("{key} "))).unwrap_or("").to_string();
        assert!(["without-password", "prohibit-password"].contains(&setting("permitrootlogin").as_str()), "{n}: sshd -T permitrootlogin {:?}", setting("permitrootlogin"));
        assert_eq!(setting("passwordauthentication"), "no", "{n}: sshd -T passwordauthentication");
        assert_eq!(setting("kbdinteractiveauthentication"), "no", "{n}: sshd -T kbdinteractiveauthentication");
        let o = ssh_as("deploy", n, "id -un");
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "deploy", "{n}: deploy login with deploy_keys");
    }
    bootstrap_changes_nothing("a second bootstrap");
}

fn bootstrap_changes_nothing(what: &str) {
    let again = provision_in(project(), &["bootstrap", "inventories/sandbox.yml", "-v"]);
    assert_eq!(again.code, 0, "{what}:\n{}", again.out);
    assert!(again.out.contains("; 0 changes"), "{what} changed something:\n{}", again.out);
    for (n, _) in HOSTS {
        assert!(again.out.contains(&format!("{n} already bootstrapped")), "{what}: {n} was not reached as the admin:\n{}", again.out);
    }
}

/// Must show 1: the first provision exits 0; a second --check reports 0 changes and exits 0.
fn provision_then_check() {
    let first = provision(&["-v"]);
    record(&format!("stack: first provision of the sandbox: {:.1}s, exit {}", first.secs, first.code));
    assert_eq!(first.code, 0, "first provision failed:\n{}", first.out);
    for (n, _) in HOSTS {
        assert!(first.out.contains(&format!("{n}: ok=")), "no summary for {n}:\n{}", first.out);
    }
    assert_no_password_part("the first provision", &first.out);
    // The app itself: examples/shop, released as a user releases it (assets built on this
    // machine, bundle and migrations on the hosts, the health gate, the switch).
    let shop = root().join("examples/shop");
    let release = provision_in(project(), &["release", "inventories/sandbox.yml", "--dir", &shop.to_string_lossy(), "--revision", "shop-1"]);
    record(&format!("stack: release of examples/shop: {:.1}s, exit {}", release.secs, release.code));
    assert_eq!(release.code, 0, "provision release of examples/shop:\n{}", release.out);
    assert!(release.out.contains("migrations on app1"), "{}", release.out);
    check_converged("second run");
}

/// The app host that rendered shop's page (its `<strong id="host">`).
fn served_by(page: &str) -> String {
    page.split("<strong id=\"host\">").nth(1).and_then(|s| s.split('<').next()).unwrap_or_default().to_string()
}

fn check_converged(what: &str) {
    let check = provision(&["--check", "-v"]);
    record(&format!("stack: {what} --check: {:.1}s, exit {}", check.secs, check.code));
    assert_eq!(check.code, 0, "{what}: --check wants changes (or failed):\n{}", check.out);
    assert!(check.out.contains("; 0 changes"), "{what}: --check did not report 0 changes:\n{}", check.out);
    assert_no_password_part(what, &check.out);
    let json = provision(&["--check", "--format", "json"]);
    assert_no_password_part(what, &json.out);
    // One round trip per host, the database hosts too: their restart guard holds a fact
    // (the buffer pool), and the facts kept from the last probe make a second one needless.
    let report: serde_json::Value = serde_json::Deserializer::from_str(&json.out)
        .into_iter()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("{what}: no JSON report in:\n{}", json.out));
    for h in report["hosts"].as_array().expect("hosts") {
        assert_eq!(h["round_trips"], 1, "{what}: {} took more than one round trip", h["host"]);
    }
}

/// Must show 2: requests through web1 reach app1 and app2.
fn load_balancing() {
    let mut seen = BTreeSet::new();
    let mut last = String::new();
    for _ in 0..20 {
        let (status, body) = http(WEB, "GET", "/", None).expect("GET / through web1");
        assert_eq!(status, 200, "GET / through web1: {status} {body}");
        seen.insert(served_by(&body));
        last = body;
    }
    web::fingerprinted_asset_from_nginx(&last);
    let want: BTreeSet<String> = ["app1", "app2"].iter().map(|s| s.to_string()).collect();
    assert_eq!(seen, want, "20 requests through web1 were served by {seen:?}");
    // The upstream really is computed from the inventory's puma hosts.
    let conf = sh("web1", "nginx -T 2>/dev/null");
    for a in ["10.77.0.22:3000", "10.77.0.23:3000"] {
        assert!(conf.contains(&format!("server {a} fail_timeout=0;")), "nginx -T lacks upstream {a}");
    }
    assert_eq!(ssh("web1", "test -e /etc/nginx/sites-enabled/default").0, 1, "the default site is still enabled");
    let (status, body) = http(WEB, "GET", "/up", None).expect("GET /up");
    assert_eq!((status, body.trim()), (200, "up"));
}

/// The shared pieces and the puma unit, read back.
fn app_hosts() {
    for h in ["app1", "app2", "worker1", "faye1"] {
        let st = sh(h, "stat -c '%a %U %G' /etc/shop/shop.env /var/www/shop/shared/tmp/pids");
        assert_eq!(st, "640 root deploy\n755 deploy deploy", "{h}: env file / app tree");
        let env = sh(h, "cat /etc/shop/shop.env");
        assert!(env.contains("RAILS_ENV=sandbox") && env.contains("MAIL_INTERCEPT_TO=admins@example.com"), "{h}: env file lacks RAILS_ENV or the mail intercept");
        assert_eq!(ssh(h, "runuser -u nobody -- cat /etc/shop/shop.env").0, 1, "{h}: the env file is readable by others");
    }
    assert!(sh("app1", "grep pool /var/www/shop/shared/config/database.yml").contains("pool: 5"));
    let props = sh("app1", "systemctl show -p Type,WatchdogUSec,User,Restart,UnitFileState,WorkingDirectory puma");
    for want in ["Type=notify", "WatchdogUSec=10s", "User=deploy", "Restart=always", "UnitFileState=enabled", "WorkingDirectory=/var/www/shop/current"] {
        assert!(props.contains(want), "puma unit lacks {want}:\n{props}");
    }
    // Phased restart: reload replaces the workers, the master stays.
    let master = main_pid("app1", "puma");
    let workers = sh("app1", &format!("pgrep -P {master} | sort"));
    sh("app1", "systemctl reload puma");
    wait_for(60, "puma's workers to be replaced", || {
        let now = ssh("app1", &format!("pgrep -P {master} | sort")).1;
        (now.lines().count() == 2 && now.lines().all(|w| !workers.lines().any(|o| o == w))).then_some(())
    });
    assert_eq!(main_pid("app1", "puma"), master, "systemctl reload puma replaced the master");
    // MariaDB: the primary's settings, and remote root is gone.
    assert_eq!(sh("db1", "mysql -NBe 'SELECT @@server_id, @@log_bin, @@read_only, @@binlog_format'"), "1\t1\t0\tROW");
    // The buffer pool is sized from the host's memory (facts.memory_mb, read by the probe):
    // the sandbox's share 0.01, in whole 128 MiB chunks, at least one.
    for db in ["db1", "db2"] {
        let memory_mb: u64 = sh(db, "awk '/^MemTotal:/ {print $2}' /proc/meminfo").parse::<u64>().expect("MemTotal") / 1024;
        let want = (memory_mb / 100 / 128).max(1) * 128 * 1024 * 1024;
        assert_eq!(sh(db, "mysql -NBe 'SELECT @@innodb_buffer_pool_size'"), want.to_string(), "{db}'s buffer pool from {memory_mb} MB");
    }
    assert_eq!(sh("db1", "mysql -NBe \"SELECT COUNT(*) FROM mysql.user WHERE User = 'root' AND Host NOT IN ('localhost', '127.0.0.1', '::1')\""), "0");
    assert_eq!(sh("db1", &format!("mysql -NBe \"SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{DB_NAME}'\"")), "utf8mb4");
    assert_eq!(sh("db1", "stat -c '%a %U' /etc/mysql/provision/shop.cnf"), "600 root");
    // The 94-character password arrives as itself: in root's client options (its login
    // works), in the app's environment as systemd gives it to puma, and at MariaDB from an
    // app host with exactly these characters.
    let pw = app_password();
    assert_eq!(sh("db1", "mysql --defaults-extra-file=/etc/mysql/provision/shop.cnf -NBe 'SELECT CURRENT_USER()'"), "shop@localhost");
    let environ = sh("app1", "tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value puma)/environ | grep '^DB_PASSWORD='");
    assert_eq!(environ, format!("DB_PASSWORD={pw}"), "puma's DB_PASSWORD");
    let login = sh(
        "app1",
        &format!(
            "printf '%s' {} > /root/pv-pw && ruby -rmysql2 -e 'c = Mysql2::Client.new(host: \"10.77.0.25\", username: \"shop\", password: File.read(\"/root/pv-pw\")); puts c.query(\"SELECT CURRENT_USER() AS u\").first[\"u\"]'; rm -f /root/pv-pw",
            sq(&pw)
        ),
    );
    assert_eq!(login, "shop@10.77.0.22", "the app user logs in with exactly the 94 characters");
    let wrong = ssh("app1", "ruby -rmysql2 -e 'Mysql2::Client.new(host: \"10.77.0.25\", username: \"shop\", password: \"wrong\")' 2>&1");
    assert_ne!(wrong.0, 0, "a wrong password must not log in");
    // redis listens on the private address.
    assert!(sh("worker1", "ss -ltnH 'sport = :6379'").contains("10.77.0.24:6379"));
    // redis requires its password: a client without it is refused (the job below shows the
    // app and sidekiq have it, percent-encoded in REDIS_URL); redis.conf, which holds it,
    // is readable by root and redis only.
    let anonymous = ssh("app1", "ruby -rredis -e 'puts Redis.new(host: \"10.77.0.24\").ping' 2>&1");
    assert!(anonymous.0 != 0 && anonymous.1.contains("NOAUTH"), "redis without the password: {anonymous:?}");
    assert_eq!(sh("worker1", "stat -c '%a %U:%G' /etc/redis/redis.conf"), "640 root:redis");
    // puma and faye listen on the private address, not on every interface.
    assert_eq!(sh("app1", "ss -ltnH 'sport = :3000' | awk '{print $4}'"), "10.77.0.22:3000", "puma's listening socket on app1");
    assert_eq!(sh("faye1", "ss -ltnH 'sport = :9293' | awk '{print $4}'"), "10.77.0.27:9293");
}

/// Must show 3: a job posted through nginx runs on worker1; its row is on db1 and db2.
fn job_through_the_stack() -> String {
    let (status, body) = http(WEB, "POST", "/jobs", Some(("application/x-www-form-urlencoded", ""))).expect("POST /jobs");
    assert_eq!(status, 202, "POST /jobs through web1: {status} {body}");
    let jid = json_str(&body, "id").unwrap_or_else(|| panic!("no job id in {body}"));
    let body = wait_for(60, &format!("job {jid} to run"), || match http(WEB, "GET", &format!("/jobs/{jid}"), None) {
        Ok((200, b)) => Some(b),
        _ => None,
    });
    assert_eq!(json_str(&body, "worker").as_deref(), Some("worker1"), "job {jid}: {body}");
    // The job's mail (to the order's customer) went to the admins, into worker1's local
    // mailbox (the mail role's exim), the customer kept in X-Original-To; exim delivered
    // locally only.
    assert_eq!(json_str(&body, "mailed_to").as_deref(), Some("admins@example.com"), "job {jid}: {body}");
    let mbox = sh("worker1", "cat /var/mail/mailcatch").replace('\r', "");
    assert!(mbox.lines().any(|l| l == "To: admins@example.com") && mbox.lines().any(|l| l == "X-Original-To: customer@example.com"), "worker1's mailbox:\n{mbox}");
    let exim = sh("worker1", "cat /var/log/exim4/mainlog");
    for d in exim.lines().filter(|l| l.contains(" => ") || l.contains(" -> ")) {
        assert!(d.contains(" R=provision_catch_all T=provision_catch_all") && !d.contains(" H="), "a delivery that is not local: {d}");
    }
    let q = format!("mysql -NBe \"SELECT worker FROM {DB_NAME}.job_runs WHERE job_id = '{jid}'\"");
    assert_eq!(sh("db1", &q), "worker1", "row of job {jid} on db1");
    wait_for(60, &format!("row of job {jid} replicated to db2"), || (ssh("db2", &q).1 == "worker1").then_some(()));
    // The replica replicates, and the app cannot write to it.
    let status = sh("db2", "mysql -e 'SHOW SLAVE STATUS\\G'");
    assert!(status.contains("Slave_IO_Running: Yes") && status.contains("Slave_SQL_Running: Yes"), "db2:\n{status}");
    assert_eq!(sh("db2", "mysql -NBe 'SELECT @@read_only'"), "1");
    jid
}

/// Must show 4: a faye handshake through nginx /faye answers successful.
fn faye_handshake() {
    let hs = r#"[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}]"#;
    let (status, body) = http(WEB, "POST", "/faye", Some(("application/json", hs))).expect("POST /faye");
    assert_eq!(status, 200, "faye handshake through web1: {status} {body}");
    assert!(body.contains("\"successful\":true"), "faye handshake through web1: {body}");
    // And a websocket upgrade passes the proxy, over TLS.
    web::faye_websocket_over_tls();
}

/// Must show 5: the deploy user may restart sidekiq, and nothing else.
fn deploy_sudo() {
    let before = main_pid("worker1", "sidekiq");
    let (code, out, err) = ssh("worker1", "runuser -u deploy -- sudo -n systemctl restart sidekiq");
    assert_eq!(code, 0, "deploy could not restart sidekiq: {out} {err}");
    wait_active("worker1", "sidekiq", 60);
    let after = main_pid("worker1", "sidekiq");
    assert!(after != 0 && after != before, "sidekiq MainPID {before} → {after}: not restarted");
    for refused in ["sudo -n systemctl restart nginx", "sudo -n true", "sudo -n systemctl restart puma", "sudo -n systemctl kill -s KILL sidekiq"] {
        let (code, _, err) = ssh("worker1", &format!("runuser -u deploy -- {refused}"));
        assert_ne!(code, 0, "deploy may run `{refused}`");
        assert!(err.contains("password is required") || err.contains("not allowed"), "`{refused}` refused for another reason: {err}");
    }
    // Quiet: sudo allows `systemctl kill -s TSTP sidekiq` (listed, checked without running it:
    // systemd in the testbed's containers cannot signal a whole cgroup, EIO), and the
    // --kill-who=main form really quiets it.
    let (code, _, err) = ssh("worker1", "runuser -u deploy -- sudo -n -l /usr/bin/systemctl kill -s TSTP sidekiq");
    assert_eq!(code, 0, "deploy may not quiet sidekiq with systemctl kill -s TSTP: {err}");
    let (code, _, err) = ssh("worker1", "runuser -u deploy -- sudo -n systemctl kill --kill-who=main -s TSTP sidekiq");
    assert_eq!(code, 0, "deploy could not quiet sidekiq: {err}");
    wait_for(30, "sidekiq's process title to show stopping after TSTP", || {
        let pid = main_pid("worker1", "sidekiq");
        ssh("worker1", &format!("ps -o args= -p {pid}")).1.contains("stopping").then_some(())
    });
    sh("worker1", "runuser -u deploy -- sudo -n systemctl restart sidekiq");
    wait_active("worker1", "sidekiq", 60);
    let visudo = sh("worker1", "visudo -c 2>&1; stat -c '%a %U %G' /etc/sudoers.d/deploy-sidekiq");
    assert!(visudo.contains("440 root root"), "{visudo}");
}

/// Must show 6: sidekiq comes back after kill -9, and after the worker1 container restarts.
fn recovery() {
    let props = sh("worker1", "systemctl show -p Type,NotifyAccess,Restart,User,UnitFileState,TimeoutStopUSec,Environment sidekiq");
    for want in ["Type=notify", "NotifyAccess=all", "Restart=always", "User=deploy", "UnitFileState=enabled", "TimeoutStopUSec=30s", "RAILS_MAX_THREADS=5"] {
        assert!(props.contains(want), "sidekiq unit lacks {want}:\n{props}");
    }
    let n_before: u32 = sh("worker1", "systemctl show -p NRestarts --value sidekiq").parse().unwrap();
    let pid = main_pid("worker1", "sidekiq");
    sh("worker1", &format!("kill -9 {pid}"));
    wait_for(60, "systemd to restart sidekiq after kill -9", || {
        let p = main_pid("worker1", "sidekiq");
        let active = ssh("worker1", "systemctl is-active sidekiq").1 == "active";
        (active && p != 0 && p != pid).then_some(())
    });
    let n_after: u32 = sh("worker1", "systemctl show -p NRestarts --value sidekiq").parse().unwrap();
    assert!(n_after > n_before, "NRestarts {n_before} → {n_after}");

    restart_container("worker1");
    wait_active("worker1", "sidekiq", 120);
    let boot_pid = main_pid("worker1", "sidekiq");
    assert!(boot_pid != 0, "sidekiq has no main process after the restart");
    // It works, too: a new job runs.
    job_through_the_stack();
}

/// Powers the container off (SIGTERM to its systemd-nspawn: a clean shutdown) and boots it
/// again the way tests/testbed.sh starts hosts, then waits for ssh and systemd.
fn restart_container(name: &str) {
    let script = root().join("tests/testbed.sh");
    if script.exists() && std::fs::read_to_string(&script).unwrap_or_default().contains("restart)") {
        let st = Command::new("bash").arg(&script).args(["restart", name]).status().expect("testbed.sh restart");
        assert!(st.success(), "tests/testbed.sh restart {name} failed");
    } else {
        let dir = state_dir().join("hosts").join(name);
        let pid: i32 = std::fs::read_to_string(dir.join("pid")).expect("host pid file").trim().parse().unwrap();
        // As tests/testbed.sh stops a host: SIGTERM (a clean poweroff), SIGKILL after 30 s
        // (a container's systemd-halt sometimes fails and leaves nspawn waiting).
        let gone = || !Path::new(&format!("/proc/{pid}")).exists();
        Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !gone() && Instant::now() < deadline {
            sleep(Duration::from_millis(300));
        }
        if !gone() {
            eprintln!("{name}: no clean poweroff in 30 s, killing its systemd-nspawn");
            Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
        }
        wait_for(30, &format!("{name}'s container to stop"), || gone().then_some(()));
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let child = Command::new("setsid")
            .args(["systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit"])
            .arg(format!("--machine={name}"))
            .arg(format!("--directory={}", dir.join("root").display()))
            .arg(format!("--network-namespace-path=/run/netns/pvtb-{name}"))
            .args(["--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=read-only"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start systemd-nspawn");
        std::fs::write(dir.join("pid"), format!("{}\n", child.id())).unwrap();
        std::mem::forget(child);
    }
    wait_for(120, &format!("{name} to boot"), || {
        let (_, out, _) = ssh(name, "systemctl is-system-running --wait");
        (out == "running" || out == "degraded").then_some(())
    });
    // The kernel is shared, so /proc/uptime is the machine's: the age of the container's
    // PID 1 (its systemd) tells whether it booted again.
    let age: u64 = sh(name, "ps -o etimes= -p 1").trim().parse().unwrap();
    assert!(age < 300, "{name} did not restart (its systemd runs for {age}s)");
}

/// Must show 7: a variable that breaks nginx's config fails the run with nginx's message,
/// and web1 keeps serving with the old config.
fn nginx_check_failure() {
    let site = "/etc/nginx/sites-available/shop";
    let before = sh("web1", &format!("sha256sum {site}"));
    let run = provision(&["--limit", "web1", "-e", "nginx_client_max_body_size=64q"]);
    assert_eq!(run.code, 1, "a broken nginx config did not fail the run:\n{}", run.out);
    assert!(run.out.contains("nginx -t") && run.out.contains("client_max_body_size"), "no nginx message in the output:\n{}", run.out);
    assert!(run.out.contains("test failed") || run.out.contains("invalid"), "no nginx message in the output:\n{}", run.out);
    assert_eq!(sh("web1", &format!("sha256sum {site}")), before, "the old site file was not put back");
    assert!(!sh("web1", &format!("cat {site}")).contains("64q"));
    sh("web1", "nginx -t 2>&1");
    assert_eq!(sh("web1", "systemctl is-active nginx"), "active");
    let (status, body) = http(WEB, "GET", "/", None).expect("GET / after the failed run");
    assert!(status == 200 && served_by(&body).starts_with("app"), "web1 after the failed run: {status} {body}");
    // A normal run afterwards converges again (it runs the reload the failed run journaled).
    let mut fix = provision(&["--limit", "web1"]);
    if fix.code != 0 {
        // Seen once: the journaled reload handler reported exit 1 with no output, and the
        // same run by hand succeeded (reported as an engine problem). Retry once, loudly.
        eprintln!("WARNING: provision after the failure failed, retrying once:\n{}", fix.out);
        fix = provision(&["--limit", "web1"]);
    }
    assert_eq!(fix.code, 0, "provision after the failure:\n{}", fix.out);
}

#[test]
fn stack_end_to_end() {
    preflight();
    // Outside this repository: the project comes from the binary alone.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    assert!(!elsewhere.path().starts_with(root()), "the temp directory is inside the repository");
    init_and_bootstrap(elsewhere.path());
    provision_then_check();
    web::redirect_and_certificate();
    load_balancing();
    app_hosts();
    job_through_the_stack();
    faye_handshake();
    network::ports_closed_to_outsiders();
    network::database_accounts_per_address();
    network::lockout_canary_reverts();
    deploy_sudo();
    recovery();
    nginx_check_failure();
    check_converged("after the whole test");
    // bootstrap and the app role both manage the deploy user: neither undoes the other.
    bootstrap_changes_nothing("bootstrap after the whole test");
}

/// The staging and production inventories are valid, checked without connecting.
#[test]
fn inventories_validate() {
    for inv in ["inventories/staging.yml", "inventories/production.yml", "inventories/sandbox.yml"] {
        let o = Command::new(provision_bin()).current_dir(root()).args(["validate", inv]).output().unwrap();
        assert!(o.status.success(), "provision validate {inv}:\n{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    }
}

/// A database pool smaller than sidekiq's concurrency is an error found before connecting.
#[test]
fn pool_below_concurrency_is_an_error_before_any_change() {
    let o = Command::new(provision_bin())
        .current_dir(root())
        .args(["inventories/staging.yml", "--check", "-e", "db_pool=3", "-e", "sidekiq_concurrency=10"])
        .env("FLIPPER_SECRET_KEY_BASE", "x").env("FLIPPER_MYSQL_PASSWORD", "x")
        .output()
        .unwrap();
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("db_pool (3) is smaller than sidekiq_concurrency (10)") && out.contains("roles/sidekiq/tasks.yml:"), "{out}");
    assert!(!out.contains("connected"), "it connected:\n{out}");
}
