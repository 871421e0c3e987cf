//! `provision bootstrap` on a fresh testbed host (t4: only root with a key): users and keys,
//! trust on first use, the canary before root login goes, a rejected sshd setting.

mod common;
use common::{address, run_provision, testbed_dir, Project};
use std::process::Command;

const H: &str = "t4";

/// Logs in as `user` with the testbed key, checking the host key against `known_hosts`.
fn login(user: &str, known_hosts: &std::path::Path, cmd: &str) -> (bool, String) {
    let out = Command::new("ssh")
        .args(["-i", &testbed_dir().join("id_ed25519").to_string_lossy()])
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "IdentitiesOnly=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .arg(format!("{user}@{}", address(H)))
        .arg(cmd)
        .output()
        .expect("ssh");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn project(admin_keys: &str) -> Project {
    let p = Project::new(&[]);
    let key = std::fs::read_to_string(testbed_dir().join("id_ed25519.pub")).expect("testbed key");
    let key = key.trim();
    let admin_keys = admin_keys.replace("KEY", key);
    p.write(
        "inventories/test.yml",
        &format!(
            "stage: test\nssh:\n  identity_file: {}\n  known_hosts: ../known_hosts\nvars:\n  app: flipper\n  admin_user: pvadmin\n  admin_keys: {admin_keys}\n  deploy_keys: [\"{key}\"]\nhosts:\n  {H}:\n    address: {}\n    user: pvadmin\n    roles: []\n",
            testbed_dir().join("id_ed25519").display(),
            address(H)
        ),
    );
    // The project's known_hosts starts empty: bootstrap records the key (trust on first use).
    p.write("known_hosts", "");
    // The project's roles are provision's own bootstrap roles.
    for r in ["bootstrap", "bootstrap-ssh"] {
        p.copy_role(r);
    }
    p
}

fn bootstrap(p: &Project, extra: &[&str]) -> common::Run {
    run_provision(p.dir.path(), &["bootstrap", "inventories/test.yml"], extra)
}

#[test]
fn bootstrap_from_root_with_a_key_to_ready() {
    // 1. The admin has no key: the canary login fails, so root login stays enabled.
    let p = project("[]");
    let kh = p.path("known_hosts");
    let r = bootstrap(&p, &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("fresh login as the admin `pvadmin`") && r.stdout.contains("left as they are"), "{}", r.all());
    let found = Command::new("ssh-keygen").args(["-F", &address(H), "-f"]).arg(&kh).output().expect("ssh-keygen");
    assert!(found.status.success(), "the host key was recorded on first use");
    assert!(login("root", &kh, "true").0, "root login must still work after a failed canary");
    assert!(!login("root", &kh, "test -e /etc/ssh/sshd_config.d/60-provision.conf").0);

    // 2. With the admin's key: users, keys, sudo, app tree; then no root login.
    let p2 = project("[\"KEY\"]");
    std::fs::copy(&kh, p2.path("known_hosts")).expect("copy known_hosts");
    let kh = p2.path("known_hosts");
    let r = bootstrap(&p2, &["-v"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let (ok, out) = login("pvadmin", &kh, "sudo -n true && echo sudo-ok; stat -c '%U %a' /var/www/flipper/shared/tmp/pids");
    assert!(ok, "admin login");
    assert_eq!(out, "sudo-ok\ndeploy 755\n");
    assert_eq!(login("deploy", &kh, "id -un").1, "deploy\n");
    assert!(!login("deploy", &kh, "sudo -n true").0, "deploy has no general sudo");
    assert!(!login("root", &kh, "true").0, "root login is disabled after bootstrap");

    // 3. A second bootstrap changes nothing (it connects as the admin now).
    let r = bootstrap(&p2, &["--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.changes(), 0, "{}", r.all());

    // 4. An sshd setting that `sshd -t` rejects changes nothing, and login still works.
    let before = login("pvadmin", &kh, "cat /etc/ssh/sshd_config.d/60-provision.conf").1;
    let r = bootstrap(&p2, &["-e", "sshd_permit_root_login=sometimes"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("sshd -t") && r.stdout.contains("previous file was restored"), "{}", r.all());
    assert_eq!(login("pvadmin", &kh, "cat /etc/ssh/sshd_config.d/60-provision.conf").1, before);
    assert!(login("pvadmin", &kh, "sudo -n sshd -t && echo valid").1.contains("valid"));

    // 5. Later runs connect as the admin, through sudo.
    let r = run_provision(p2.dir.path(), &["inventories/test.yml", "--check"], &[]);
    assert_eq!(r.code, 0, "{}", r.all());

    // 6. A changed host key is refused, even by bootstrap.
    std::fs::write(&kh, format!("{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBk4kIuqK1wOE0y5s8DX0vcDlLIHZVDGL9cb3T5N9Hw0\n", address(H))).expect("write");
    let r = bootstrap(&p2, &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("host key"), "{}", r.all());
}
