//! Faults on real testbed hosts: provision killed mid-apply, a host dying mid-run, two
//! runs at once, a stale lock, secrets, a changed host key, and a sudoers change that
//! would lock the admin out. Every outcome is read back from the hosts.

mod common;
use common::{serial, ssh, testbed_dir, Project};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const H: &str = "t3";
const H2: &str = "t2";

/// A small deterministic generator: the kill moments are random but reproducible.
struct Lcg(u64);
impl Lcg {
    fn next_ms(&mut self, max: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % max
    }
}

/// After provision is killed, the remote script runs until its next report finds the
/// connection gone (SIGPIPE). Waits until the host's lock is free or its holder is dead.
fn wait_for_remote_run_to_end(host: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while ssh(host, "o=$(cat /var/lib/provision/lock/owner 2>/dev/null) && kill -0 ${o%% *} 2>/dev/null && echo busy") == "busy\n" {
        assert!(Instant::now() < deadline, "the remote part of a killed run never ended");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn spawn_apply(p: &Project, extra: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_provision"))
        .current_dir(p.dir.path())
        .env("NO_COLOR", "1")
        .arg("inventories/test.yml")
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("provision starts")
}

#[test]
fn sigkill_at_random_moments_never_leaves_a_partial_file_and_reruns_converge() {
    let _s = serial();
    let p = Project::new(&[(H, &["crash"])]);
    ssh(H, "rm -rf /srv/pv-crash /etc/sudoers.d/pv-crash /etc/systemd/system/pvcrash.service; systemctl daemon-reload");
    p.write("roles/crash/defaults.yml", "# which version of the files to write\nversion: a\n");
    // Large files make the write window wide enough to be hit.
    p.write("roles/crash/templates/big.j2", "{% for i in range(20000) %}{{ version }}-{{ i }}\n{% endfor %}");
    p.write("roles/crash/templates/unit.j2", "[Unit]\nDescription=crash test {{ version }}\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n");
    let mut tasks = String::from("- file: {path: /srv/pv-crash, state: directory}\n");
    for i in 0..8 {
        tasks.push_str(&format!("- template: {{src: big.j2, dest: /srv/pv-crash/f{i}}}\n"));
    }
    tasks.push_str("- sudoers: {name: pv-crash, user: nobody, commands: [\"/usr/bin/echo {{ version }}\"]}\n");
    tasks.push_str("- unit: {name: pvcrash, template: unit.j2, enabled: true, state: started}\n");
    p.write("roles/crash/tasks.yml", &tasks);

    let mut rng = Lcg(0x5eed);
    let expected = |v: &str| -> String { (0..20000).map(|i| format!("{v}-{i}\n")).collect() };
    let sums = [("a", crate_sha(&expected("a"))), ("b", crate_sha(&expected("b")))];
    let mut kills = 0;
    for round in 0..20 {
        let version = if round % 2 == 0 { "b" } else { "a" };
        p.write("roles/crash/defaults.yml", &format!("version: {version}\n"));
        let mut child = spawn_apply(&p, &[]);
        std::thread::sleep(Duration::from_millis(100 + rng.next_ms(1400)));
        if child.try_wait().expect("wait").is_none() {
            kills += 1;
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        wait_for_remote_run_to_end(H);
        // Every managed file is whole: the old version or the new one, never a mix.
        let out = ssh(H, "cd /srv/pv-crash 2>/dev/null && sha256sum f* 2>/dev/null; visudo -c >/dev/null 2>&1 && echo sudoers-ok");
        for line in out.lines().filter(|l| l.contains(" f")) {
            let sum = line.split_whitespace().next().unwrap_or_default();
            assert!(sums.iter().any(|(_, s)| s == sum), "round {round}: a partially written file: {line}");
        }
        assert!(out.contains("sudoers-ok"), "round {round}: sudoers broken:\n{out}");
    }
    assert!(kills >= 10, "only {kills} of 20 kills hit a running apply; the test proves nothing");
    common::record(&format!("faults: SIGKILL during apply: {kills} of 20 kills hit a running apply; every file whole after each"));
    // A stale lock from a killed run is taken over; the re-run converges and then changes nothing.
    let r = p.run(&[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = p.run(&["--format", "json"]);
    assert_eq!(r.changes(), 0, "{}", r.all());
    // The killed runs' temp directories (a secret's stdin may be in one) and lock are gone.
    assert_eq!(ssh(H, "ls -d /tmp/.pv-run.* 2>/dev/null | wc -l; test -e /var/lib/provision/lock && echo locked || echo unlocked"), "0\nunlocked\n");
    assert_eq!(ssh(H, "ls -A /srv/pv-crash | grep -c '^\\.pv' || true"), "0\n", "temp files left behind");
    // A kill after the last change but before the run's EXIT trap leaves a lock and a temp
    // directory on a converged host: a run with nothing to change still removes them; --check
    // leaves them alone (it changes nothing).
    let plant = "dead=$(sh -c 'echo $$'); mkdir -p /var/lib/provision/lock /tmp/.pv-run.planted && echo \"$dead provision on x at 1\" > /var/lib/provision/lock/owner && echo $dead > /tmp/.pv-run.planted/pid && echo secret > /tmp/.pv-run.planted/stdin";
    let leftovers = "ls -d /tmp/.pv-run.* 2>/dev/null | wc -l; test -e /var/lib/provision/lock && echo locked || echo unlocked";
    ssh(H, plant);
    let r = p.run(&["--check"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(ssh(H, leftovers), "1\nlocked\n", "--check touched the host");
    let r = p.run(&["--format", "json"]);
    assert_eq!((r.code, r.changes()), (0, 0), "{}", r.all());
    assert_eq!(ssh(H, leftovers), "0\nunlocked\n", "a run with nothing to change left a killed run's leftovers");
    // Anyone can make names in /tmp: a FIFO (or a link to /dev/zero) planted as a run
    // directory's `pid` must not hang the probe or the cleanup, and another user's
    // directory is not ours to remove.
    ssh(H, "mkdir /tmp/.pv-run.fifo && mkfifo /tmp/.pv-run.fifo/pid && chown -R nobody /tmp/.pv-run.fifo; mkdir /tmp/.pv-run.zero && ln -s /dev/zero /tmp/.pv-run.zero/pid");
    for args in [&["--check"][..], &[][..]] {
        let t = Instant::now();
        let r = p.run(args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.all());
        assert!(t.elapsed() < Duration::from_secs(60), "{args:?} took {:?}: a planted pid hung it", t.elapsed());
    }
    assert_eq!(ssh(H, "ls -d /tmp/.pv-run.* 2>/dev/null"), "/tmp/.pv-run.fifo\n", "the root-owned leftover goes, another user's directory stays");
    ssh(H, "rm -rf /tmp/.pv-run.fifo");
}

fn crate_sha(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[test]
fn handlers_of_a_crashed_run_run_on_the_next_run() {
    let _s = serial();
    let p = Project::new(&[(H, &["h"])]);
    ssh(H, "systemctl stop pvh 2>/dev/null; rm -rf /srv/pv-h /etc/systemd/system/pvh.service /var/lib/provision/pending-handlers; systemctl daemon-reload");
    p.write("roles/h/defaults.yml", "# config value\nvalue: one\n");
    p.write("roles/h/templates/pvh.service.j2", "[Unit]\nDescription=handler test\n[Service]\nExecStartPre=/bin/sh -c 'date >> /srv/pv-h/starts'\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n");
    p.write(
        "roles/h/tasks.yml",
        "- file: {path: /srv/pv-h, state: directory}\n\
         - unit: {name: pvh, template: pvh.service.j2, enabled: true, state: started}\n\
         - file: {path: /srv/pv-h/config, content: \"{{ value }}\\n\"}\n  notify: restart pvh\n\
         - command: {run: \"sleep 4; touch /srv/pv-h/slow-{{ value }}\", creates: \"/srv/pv-h/slow-{{ value }}\"}\n",
    );
    p.write("roles/h/handlers.yml", "restart pvh:\n  unit: {name: pvh, state: restarted}\n");
    let r = p.run(&[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let starts = || ssh(H, "wc -l < /srv/pv-h/starts").trim().parse::<u32>().unwrap_or(0);
    let before = starts();

    // Change the config, and kill provision while the slow command after it runs.
    p.write("roles/h/defaults.yml", "value: two\n");
    let mut child = spawn_apply(&p, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while ssh(H, "cat /srv/pv-h/config") != "two\n" {
        assert!(Instant::now() < deadline, "the config change never landed");
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    wait_for_remote_run_to_end(H);
    assert_eq!(starts(), before, "the handler ran although provision was killed before it");
    assert_eq!(ssh(H, "cat /var/lib/provision/pending-handlers"), "h/restart pvh\n", "the notification is journaled on the host");

    // The next run sees no config change, but runs the pending handler.
    let check = p.run(&["--check"]);
    assert!(check.stdout.contains("* handler restart pvh") && check.stdout.contains("earlier run"), "{}", check.all());
    let r = p.run(&[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(starts(), before + 1, "the service was restarted on the run after the crash");
    assert_eq!(ssh(H, "cat /var/lib/provision/pending-handlers"), "");
    assert_eq!(p.run(&["--format", "json"]).changes(), 0);
}

#[test]
fn a_host_that_dies_mid_run_fails_alone_and_a_rerun_converges() {
    let _s = serial();
    let p = Project::new(&[(H, &["slow"]), (H2, &["slow"])]);
    for h in [H, H2] {
        ssh(h, "rm -rf /srv/pv-dies");
    }
    p.write("roles/slow/tasks.yml", "- file: {path: /srv/pv-dies, state: directory}\n- command: {run: \"sleep 3; touch /srv/pv-dies/done\", creates: /srv/pv-dies/done}\n");
    let netns = format!("pvtb-{H}");
    let child = spawn_apply(&p, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    // Cut the host off the network: for the controller it is gone, mid-run.
    let cut = Command::new("ip").args(["netns", "exec", &netns, "ip", "link", "set", "eth0", "down"]).status().expect("ip");
    assert!(cut.success());
    let started = Instant::now();
    let out = child.wait_with_output().expect("provision ends");
    let elapsed = started.elapsed();
    let _ = Command::new("ip").args(["netns", "exec", &netns, "ip", "link", "set", "eth0", "up"]).status();
    let _ = Command::new("ip").args(["netns", "exec", &netns, "ip", "route", "replace", "default", "via", "10.77.0.1"]).status();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&format!("{H2}: ok=0 changed=2 failed=0")), "the other host finished: {stdout}");
    assert!(stdout.lines().any(|l| l.starts_with(&format!("{H}: ")) && l.contains("failed=")), "{stdout}");
    assert!(elapsed < Duration::from_secs(120), "a dead host held the run for {elapsed:?}");
    // Back on the network, a re-run converges.
    std::thread::sleep(Duration::from_secs(2));
    let r = p.run(&[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(ssh(H, "test -e /srv/pv-dies/done && echo done"), "done\n");
}

#[test]
fn a_second_run_fails_naming_the_holder_and_a_stale_lock_is_recovered() {
    let _s = serial();
    let p = Project::new(&[(H, &["lock"])]);
    ssh(H, "rm -rf /srv/pv-lock");
    p.write("roles/lock/tasks.yml", "- command: {run: \"sleep 4; mkdir -p /srv/pv-lock; touch /srv/pv-lock/x\", creates: /srv/pv-lock/x}\n");
    let first = spawn_apply(&p, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    let second = p.run(&[]);
    assert_eq!(second.code, 1, "{}", second.all());
    assert!(second.stdout.contains("another provision run holds the lock") && second.stdout.contains("provision on"), "{}", second.all());
    let out = first.wait_with_output().expect("first run");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));

    // A lock whose holder died is taken over.
    ssh(H, "rm -rf /srv/pv-lock; mkdir -p /var/lib/provision/lock && echo '999999 provision on elsewhere at 0' > /var/lib/provision/lock/owner");
    let r = p.run(&[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(ssh(H, "test -e /srv/pv-lock/x && echo yes; test -e /var/lib/provision/lock || echo unlocked"), "yes\nunlocked\n");
}

#[test]
fn secrets_appear_in_no_output_and_no_process_list() {
    let _s = serial();
    let secret = "Pv-S3cret-7f3a9c";
    let env_secret = "Pv-EnvSecret-51d2";
    let p = Project::new(&[(H, &["sec"])]);
    p.inventory(&[(H, &["sec"])], &format!("vars:\n  db_password: !secret \"{secret}\"\n  api_key: !env PV_TEST_API_KEY\n"));
    ssh(H, "rm -rf /srv/pv-sec");
    p.write("roles/sec/templates/env.j2", "DB_PASSWORD={{ db_password }}\nAPI_KEY={{ api_key }}\nrev={{ rev }}\n");
    p.write("roles/sec/defaults.yml", "# a revision, to force a change\nrev: 1\n");
    p.write(
        "roles/sec/tasks.yml",
        "- file: {path: /srv/pv-sec, state: directory}\n\
         - template: {src: env.j2, dest: /srv/pv-sec/app.env, mode: \"0600\"}\n\
         - command: {run: \"sleep 2; cat > /srv/pv-sec/from-stdin-{{ rev }}\", stdin: \"{{ db_password }}\", creates: \"/srv/pv-sec/from-stdin-{{ rev }}\"}\n",
    );
    let mut printed = String::new();
    for (rev, args) in [("1", &[][..]), ("2", &["--check", "-v"][..]), ("2", &["--format", "json"][..]), ("3", &["-v", "--format", "json"][..])] {
        p.write("roles/sec/defaults.yml", &format!("rev: {rev}\n"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_provision"))
            .current_dir(p.dir.path())
            .env("PV_TEST_API_KEY", env_secret)
            .arg("inventories/test.yml")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // Watch the host's process list while the run is going.
        let mut ps = String::new();
        while child.try_wait().expect("wait").is_none() {
            ps.push_str(&ssh(H, "ps -eo args"));
            std::thread::sleep(Duration::from_millis(150));
        }
        let out = child.wait_with_output().expect("output");
        printed.push_str(&String::from_utf8_lossy(&out.stdout));
        printed.push_str(&String::from_utf8_lossy(&out.stderr));
        assert!(!ps.contains(secret) && !ps.contains(env_secret), "a secret showed in ps on the host");
        assert!(!ps.is_empty());
    }
    assert_eq!(ssh(H, "cat /srv/pv-sec/app.env"), format!("DB_PASSWORD={secret}\nAPI_KEY={env_secret}\nrev=3\n"), "the secrets did reach the host");
    assert_eq!(ssh(H, "cat /srv/pv-sec/from-stdin-3"), secret);
    assert!(printed.contains("(secret)"), "the diff of the secret file is shown as (secret):\n{printed}");
    assert!(!printed.contains(secret) && !printed.contains(env_secret), "a secret was printed:\n{printed}");
    // Nothing on the controller's side logs either: the only output is what we captured.
}

#[test]
fn a_changed_host_key_stops_that_host() {
    let _s = serial();
    let p = Project::new(&[(H, &["k"])]);
    p.write("roles/k/tasks.yml", "- file: {path: /srv/pv-key, state: directory}\n");
    let tmp = p.path("other-key");
    let gen = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&tmp).status().expect("ssh-keygen");
    assert!(gen.success());
    let public = std::fs::read_to_string(p.path("other-key.pub")).expect("pub");
    let fake_known = format!("{} {}", common::address(H), public.split_whitespace().take(2).collect::<Vec<_>>().join(" "));
    p.write("known_hosts_changed", &format!("{fake_known}\n"));
    p.inventory(&[(H, &["k"])], "");
    let inv = std::fs::read_to_string(p.path("inventories/test.yml")).expect("inv");
    let inv = inv.replace(&testbed_dir().join("known_hosts").display().to_string(), &p.path("known_hosts_changed").display().to_string());
    p.write("inventories/test.yml", &inv);
    let r = p.run(&[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("host key"), "{}", r.all());
    assert_eq!(ssh(H, "test -e /srv/pv-key && echo yes || echo no"), "no\n");
}

#[test]
fn a_sudoers_change_that_locks_the_admin_out_is_reverted() {
    let _s = serial();
    let key = std::fs::read_to_string(testbed_dir().join("id_ed25519.pub")).expect("testbed public key");
    // As root: an admin who may sudo without a password, logging in with the testbed key.
    let root = Project::new(&[(H, &["admin"])]);
    ssh(H, "rm -f /etc/sudoers.d/pv-admin");
    root.write(
        "roles/admin/tasks.yml",
        &format!("- user: {{name: pvadmin, shell: /bin/bash, authorized_keys: [\"{}\"]}}\n- sudoers: {{name: pv-admin, user: pvadmin, commands: [ALL]}}\n", key.trim()),
    );
    let r = root.run(&[]);
    assert_eq!(r.code, 0, "{}", r.all());

    // As the admin: a change that requires a password for sudo would lock provision out.
    let admin = Project::new(&[(H, &["lockme"])]);
    let inv = std::fs::read_to_string(admin.path("inventories/test.yml")).expect("inv").replace("    roles:", "    user: pvadmin\n    roles:");
    admin.write("inventories/test.yml", &inv);
    admin.write("roles/lockme/tasks.yml", "- sudoers: {name: pv-admin, user: pvadmin, nopasswd: false, commands: [ALL]}\n");
    let before = ssh(H, "cat /etc/sudoers.d/pv-admin");
    let r = admin.run(&[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("lockout canary") && r.stdout.contains("put back"), "{}", r.all());
    assert_eq!(ssh(H, "cat /etc/sudoers.d/pv-admin"), before, "the old sudoers file is back");
    assert_eq!(ssh(H, "su - pvadmin -c 'sudo -n true' && echo still-admin"), "still-admin\n");
    assert_eq!(ssh(H, "systemctl is-active provision-canary.timer 2>/dev/null || true").trim(), "inactive");
    // A harmless change as the admin passes the canary and stays.
    admin.write("roles/lockme/tasks.yml", "- sudoers: {name: pv-admin, user: pvadmin, runas: ALL, commands: [ALL]}\n");
    let r = admin.run(&[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(ssh(H, "cat /etc/sudoers.d/pv-admin").contains("pvadmin ALL=(ALL) NOPASSWD: ALL"));
}

#[test]
fn a_unit_that_systemd_analyze_rejects_never_lands() {
    let _s = serial();
    let p = Project::new(&[(H, &["bad"])]);
    ssh(H, "rm -f /etc/systemd/system/pvbad.service");
    p.write("roles/bad/defaults.yml", "# the service type\nunit_type: simple\n");
    p.write("roles/bad/templates/pvbad.service.j2", "[Unit]\nDescription=bad unit test\n[Service]\nType={{ unit_type }}\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n");
    p.write("roles/bad/tasks.yml", "- unit: {name: pvbad, template: pvbad.service.j2}\n");
    let r = p.run(&[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let before = ssh(H, "cat /etc/systemd/system/pvbad.service");
    p.write("roles/bad/defaults.yml", "unit_type: simpel\n");
    for args in [&["--check"][..], &[][..]] {
        let r = p.run(args);
        assert_eq!(r.code, 1, "{}", r.all());
        assert!(r.stdout.contains("systemd-analyze verify") && r.stdout.contains("simpel"), "{}", r.all());
        assert_eq!(ssh(H, "cat /etc/systemd/system/pvbad.service"), before);
    }
}

#[test]
fn a_failed_verify_puts_the_old_file_back() {
    let _s = serial();
    let p = Project::new(&[(H, &["v"])]);
    ssh(H, "rm -rf /srv/pv-verify; mkdir -p /srv/pv-verify");
    // Like `nginx -t`: the check reads the file in place, so it runs after the rename.
    p.write("roles/v/defaults.yml", "# the config\nsetting: good\n");
    p.write("roles/v/tasks.yml", "- file: {path: /srv/pv-verify/app.conf, content: \"{{ setting }}\\n\", verify: \"grep -qx good /srv/pv-verify/app.conf\"}\n");
    assert_eq!(p.run(&[]).code, 0);
    p.write("roles/v/defaults.yml", "setting: bad\n");
    let r = p.run(&[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("verification failed") && r.stdout.contains("previous file was restored"), "{}", r.all());
    assert_eq!(ssh(H, "cat /srv/pv-verify/app.conf; ls -A /srv/pv-verify"), "good\napp.conf\n");
}
