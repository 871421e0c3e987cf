//! Scheduled backups and restore (issue 13) on real testbed hosts: bkdb1 the MariaDB
//! primary, bkdb2 the replica, bk1 the backup host. The replica's timer is enabled with a
//! next run; its service, started once, writes a 0600 dump and copies it to bk1 with a key
//! of its own that cannot get a shell there; `do mysql:restore` loads the dump into a scratch
//! database with the same rows; a second converge changes nothing and `--check` on fresh
//! hosts touched nothing; bad values are refused before anything connects, at file:line.

mod common;
use common::{address, record, ssh, ssh_output, testbed_dir, Project, Run};

const PRIMARY: &str = "bkdb1";
const REPLICA: &str = "bkdb2";
const BACKUP: &str = "bk1";
const UNIT: &str = "flipper-mysql-backup";
const DIR: &str = "/var/backups/mysql";
const KEY: &str = "/etc/mysql/provision/backup_ed25519";

/// The inventory: real addresses, or every host at a closed local port (`offline`: a run that
/// connected would fail to, so an error about a value shows it was found before connecting).
fn inventory(public: &str, host_key: &str, extra_vars: &str, offline: bool) -> String {
    let tb = testbed_dir();
    let at = |h: &str| if offline { format!("127.0.0.{}\n    port: 9", 1 + [PRIMARY, REPLICA, BACKUP].iter().position(|x| *x == h).unwrap_or(0)) } else { address(h) };
    format!(
        "stage: test\nssh:\n  identity_file: {}\n  known_hosts: {}\n  connect_timeout: 5\nvars:\n  app: flipper\n  mysql_app_password: !secret \"app'pw\\\"x\"\n  mysql_replication_password: !secret repl-pw-123\n  mysql_backup_ssh_key: !env PV_BACKUP_TEST_KEY\n  mysql_backup_ssh_public_key: {public:?}\n  mysql_backup_host_key: {host_key:?}\n  firewall_admin_networks: [10.77.0.1]\n{extra_vars}hosts:\n  {PRIMARY}:\n    address: {}\n    roles: [mysql]\n    primary: true\n  {REPLICA}:\n    address: {}\n    roles: [mysql]\n  {BACKUP}:\n    address: {}\n    roles: [firewall, backup]\n",
        tb.join("id_ed25519").display(),
        tb.join("known_hosts").display(),
        at(PRIMARY),
        at(REPLICA),
        at(BACKUP),
    )
}

/// What a run could touch on `host`, hashed: packages, configs, units, the backup paths.
fn state(host: &str) -> String {
    ssh(
        host,
        "dpkg-query -W -f '${Package} ${Status}\\n' mariadb-server 2>/dev/null; getent passwd backup; \
         for d in /etc/mysql /etc/systemd/system /usr/local/sbin /srv/backup /var/backups/mysql; do \
         find \"$d\" -xdev -printf '%p %y %m %u\\n' 2>/dev/null | sort; find \"$d\" -xdev -type f -exec sha256sum {} + 2>/dev/null | sort; done",
    )
}

fn converge(p: &Project, args: &[&str]) -> Run {
    let mut a = vec!["--format", "json"];
    a.extend_from_slice(args);
    p.run(&a)
}

#[test]
fn the_replica_dumps_on_schedule_copies_to_the_backup_host_and_restores() {
    let _s = common::serial();
    let p = Project::new(&[]);
    for role in ["stack", "mysql", "backup", "firewall"] {
        p.copy_role(role);
    }
    // The copy's own key pair, made for this test; bk1's host key read over the testbed's
    // strictly checked root login (the channel this test trusts).
    let kp = p.path("backup_key");
    let made = std::process::Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "pv-backup-test", "-f"]).arg(&kp).status().expect("ssh-keygen");
    assert!(made.success());
    let private = std::fs::read_to_string(&kp).expect("key");
    let public = std::fs::read_to_string(kp.with_extension("pub")).expect("pub").trim().to_string();
    std::env::set_var("PV_BACKUP_TEST_KEY", &private);
    let host_key = ssh(BACKUP, "cat /etc/ssh/ssh_host_ed25519_key.pub").trim().to_string();
    assert!(host_key.starts_with("ssh-ed25519 "), "{host_key}");
    p.write("inventories/test.yml", &inventory(&public, &host_key, "", false));

    // 3 (part). `--check` first: what it plans, and nothing on any host changed.
    let before: Vec<String> = [PRIMARY, REPLICA, BACKUP].iter().map(|h| state(h)).collect();
    let t = std::time::Instant::now();
    let check = converge(&p, &["--check"]);
    assert!(check.code == 2 || check.code == 0, "{}", check.all());
    let after: Vec<String> = [PRIMARY, REPLICA, BACKUP].iter().map(|h| state(h)).collect();
    assert_eq!(before, after, "--check changed a host");
    record(&format!("backup: --check planned {} changes (exit {}) in {:.1} s; host state hashes identical before and after", check.changes(), check.code, t.elapsed().as_secs_f64()));

    // 1. Converge the three hosts.
    let t = std::time::Instant::now();
    let first = converge(&p, &[]);
    assert_eq!(first.code, 0, "{}", first.all());
    record(&format!("backup: first converge {} changes in {:.0} s", first.changes(), t.elapsed().as_secs_f64()));
    assert!(!first.all().contains(private.lines().nth(1).unwrap_or("-----")), "the private key was printed");

    // Rows on the primary, seen on the replica.
    ssh(PRIMARY, "mysql flipper_test -e 'DROP TABLE IF EXISTS items; CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40)); INSERT INTO items SELECT seq, CONCAT(\"item-\", seq) FROM seq_1_to_1234;'");
    let rows = ssh(PRIMARY, "mysql -NBe 'SELECT COUNT(*) FROM flipper_test.items'").trim().to_string();
    let mut replicated = String::new();
    for _ in 0..60 {
        replicated = ssh(REPLICA, "mysql -NBe 'SELECT COUNT(*) FROM flipper_test.items' 2>/dev/null").trim().to_string();
        if replicated == rows {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(replicated, rows, "the replica has the primary's rows");

    // The timer: enabled, with a next elapse.
    let timer = ssh(REPLICA, &format!("systemctl is-enabled {UNIT}.timer; systemctl is-active {UNIT}.timer; systemctl show -P NextElapseUSecRealtime {UNIT}.timer; systemctl show -P TimersCalendar {UNIT}.timer"));
    let lines: Vec<&str> = timer.lines().collect();
    assert_eq!(lines.first().copied(), Some("enabled"), "{timer}");
    assert_eq!(lines.get(1).copied(), Some("active"), "{timer}");
    assert!(lines.get(2).is_some_and(|l| !l.trim().is_empty() && *l != "n/a"), "a next elapse: {timer}");
    record(&format!("backup: timer {UNIT}.timer enabled, active, next elapse {}, {}", lines.get(2).unwrap_or(&""), lines.get(3).unwrap_or(&"")));
    assert_eq!(ssh(PRIMARY, &format!("systemctl cat {UNIT}.timer >/dev/null 2>&1 && echo present || echo absent")).trim(), "absent", "no timer on the primary");

    // The timer's service, once.
    let t = std::time::Instant::now();
    let started = ssh_output(REPLICA, &format!("systemctl start {UNIT}.service"));
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
    let secs = t.elapsed().as_secs_f64();
    let journal = ssh(REPLICA, &format!("journalctl -u {UNIT}.service -o cat --no-pager | tail -n 5"));
    let dump = ssh(REPLICA, &format!("ls -1t {DIR} | head -n 1")).trim().to_string();
    assert!(dump.starts_with("flipper_test-") && dump.ends_with(".sql.gz"), "{dump:?}\n{journal}");
    let local = ssh(REPLICA, &format!("stat -c '%a %U %G %s' {DIR} {DIR}/{dump}; sha256sum < {DIR}/{dump}"));
    let l: Vec<&str> = local.lines().collect();
    assert!(l[0].starts_with("700 root root"), "{local}");
    assert!(l[1].starts_with("600 root root"), "{local}");
    let remote = ssh(BACKUP, &format!("stat -c '%a %U' /srv/backup/data/mysql/{dump}; sha256sum < /srv/backup/data/mysql/{dump}"));
    let r: Vec<&str> = remote.lines().collect();
    assert_eq!(r.first().copied(), Some("600 backup"), "the copy reached bk1: {remote}\n{journal}");
    // Through bk1's firewall, which admits SSH from the admin network and the mysql hosts only.
    let rules = ssh(BACKUP, "nft list chain inet provision input");
    assert!(rules.contains("policy drop;") && rules.contains(&common::address(REPLICA)), "bk1's input chain:\n{rules}");
    assert_eq!(r.get(1), l.get(2), "the same bytes on both hosts");
    record(&format!("backup: service ran in {secs:.1} s: {DIR}/{dump} ({}), copy on {BACKUP} ({}), sha256 equal", l[1], r[0]));

    // The action runs the same script: a second dump, copied the same way.
    let action = common::run_provision(p.dir.path(), &["do", "inventories/test.yml", "mysql:backup"], &[]);
    assert_eq!(action.code, 0, "{}", action.all());
    assert!(action.stdout.contains("wrote /var/backups/mysql/flipper_test-") && action.stdout.contains("copied flipper_test-"), "{}", action.all());
    assert!(action.stdout.contains(&format!("{PRIMARY}: skipped")), "the primary dumps nothing: {}", action.all());
    let on_bk1 = ssh(BACKUP, "ls -1 /srv/backup/data/mysql | grep -c '[.]sql[.]gz$'").trim().to_string();
    record(&format!("backup: do mysql:backup ran the same script on {REPLICA} (primary skipped); {on_bk1} dumps on {BACKUP}"));

    // The key on the replica, and what it can do on bk1: hand over files, nothing else.
    assert_eq!(ssh(REPLICA, &format!("stat -c '%a %U %G' {KEY}")).trim(), "600 root root");
    let as_backup = |cmd: &str| {
        let out = ssh_output(
            REPLICA,
            &format!("ssh -F /dev/null -i {KEY} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/etc/mysql/provision/backup_known_hosts -o GlobalKnownHostsFile=/dev/null backup@{} {cmd} </dev/null", address(BACKUP)),
        );
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (id_code, out, err) = as_backup("id");
    assert!(!out.contains("uid=") && id_code != Some(0), "`id` must not run: {id_code:?} {out} {err}");
    assert!(err.contains("only `put NAME`"), "the forced command answered: {err}");
    let (code, out, err) = as_backup("'put ../../../etc/x.sql.gz'");
    assert!(code != Some(0) && err.contains("not an allowed file name"), "{code:?} {out} {err}");
    let (code, _, err) = as_backup("");
    assert!(code != Some(0) && err.contains("only `put NAME`"), "no login shell either: {err}");
    record(&format!("backup: with the copy's key on {BACKUP}: `id` -> exit {id_code:?}, printed no uid, refused by the forced command; a path as name refused"));

    // 2. Restore into a scratch database: the same rows.
    let t = std::time::Instant::now();
    let restore = common::run_provision(p.dir.path(), &["do", "inventories/test.yml", "mysql:restore", &dump, "pv_scratch"], &[]);
    assert_eq!(restore.code, 0, "{}", restore.all());
    let restored = ssh(REPLICA, "mysql -NBe 'SELECT COUNT(*) FROM pv_scratch.items'").trim().to_string();
    assert_eq!(restored, rows, "{}", restore.all());
    record(&format!("backup: restore of {dump} into pv_scratch on {REPLICA}: {restored} rows (primary's items: {rows}) in {:.1} s", t.elapsed().as_secs_f64()));
    // A dump that names its database (the old `--databases` form) is refused: it would load
    // into that database, not the scratch one.
    let old = dump.replace("flipper_test-", "flipper_test-old");
    ssh(REPLICA, &format!("mysqldump --databases flipper_test | gzip > {DIR}/{old}"));
    let r = common::run_provision(p.dir.path(), &["do", "inventories/test.yml", "mysql:restore", &old, "pv_scratch2"], &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.all().contains("names its database"), "{}", r.all());
    ssh(REPLICA, &format!("rm -f {DIR}/{old}"));
    // The app database itself is refused on the replica.
    let r = common::run_provision(p.dir.path(), &["do", "inventories/test.yml", "mysql:restore", &dump, "flipper_test"], &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.all().contains("replicated from the primary"), "{}", r.all());

    // 3. A second converge: nothing to change.
    let t = std::time::Instant::now();
    let again = converge(&p, &[]);
    assert_eq!((again.code, again.changes()), (0, 0), "{}", again.all());
    record(&format!("backup: second converge 0 changes in {:.1} s", t.elapsed().as_secs_f64()));

    // 4. Bad values, refused before connecting (every host of this inventory is at a closed
    // port), at the file and line where the value meets its grammar. The inventory's values
    // are checked by `validate`, which never connects: a converge's lowering of a host whose
    // templates read facts defers its errors until the host's facts are probed.
    p.write("inventories/offline.yml", &inventory(&public, &host_key, "", true));
    let offline = |args: &[&str]| common::run_provision(p.dir.path(), &[], args);
    let restore_line = line_of(&p.path("roles/mysql/actions.yml"), "- name: file");
    let db_line = line_of(&p.path("roles/mysql/actions.yml"), "- name: database");
    let mut refused = 0;
    let r = offline(&["do", "inventories/offline.yml", "mysql:restore", "-x.sql.gz"]);
    assert_eq!(r.code, 64, "{}", r.all());
    for bad in ["'", "\"", "\\", "$(touch /tmp/pv-pwned).sql.gz", "a\nb.sql.gz", "-x.sql.gz", "/etc/passwd", "../x.sql.gz", ".x.sql.gz"] {
        // A leading `-` is an unknown option to the command line (64) unless after `--`.
        let r = offline(&["do", "inventories/offline.yml", "mysql:restore", "--", bad, "pv_scratch"]);
        assert_eq!(r.code, 1, "{bad:?}: {}", r.all());
        assert!(r.stderr.contains("is not a file name") && r.stderr.contains(&format!("actions.yml:{restore_line}")), "{bad:?}: {}", r.all());
        refused += 1;
    }
    for bad in ["a'b", "x`; DROP DATABASE mysql; --", "-x", "a\nb", "$(id)", "\\", "\"", "1x", "a-b"] {
        let r = offline(&["do", "inventories/offline.yml", "mysql:restore", "--", &dump, bad]);
        assert_eq!(r.code, 1, "{bad:?}: {}", r.all());
        assert!(r.stderr.contains("is not a database name") && r.stderr.contains(&format!("actions.yml:{db_line}")), "{bad:?}: {}", r.all());
        refused += 1;
    }
    let timer_line = line_of(&p.path("roles/mysql/templates/mysql-backup.timer.j2"), "OnCalendar=");
    for bad in ["daily\nExecStartPre=/bin/touch /tmp/pv-pwned", "%n", "'daily'", "\"daily\"", "daily\\", "$(id)", "-daily", "daily;x"] {
        let extra = format!("  mysql_backup_schedule: {}\n", serde_json::to_string(bad).expect("json"));
        p.write("inventories/offline.yml", &inventory(&public, &host_key, &extra, true));
        let r = offline(&["validate", "inventories/offline.yml"]);
        assert_eq!(r.code, 1, "{bad:?}: {}", r.all());
        assert!(r.stderr.contains("is not a calendar expression") && r.stderr.contains(&format!("mysql-backup.timer.j2:{timer_line}")), "{bad:?}: {}", r.all());
        refused += 1;
    }
    for bad in [format!("{public}\nssh-ed25519 AAAA"), format!("command=\"/bin/sh\" {public}"), "$(id)".to_string()] {
        let extra = format!("  backup_senders: [{{name: other, key: {}}}]\n", serde_json::to_string(&bad).expect("json"));
        p.write("inventories/offline.yml", &inventory(&public, &host_key, &extra, true));
        let r = offline(&["validate", "inventories/offline.yml"]);
        assert_eq!(r.code, 1, "{bad:?}: {}", r.all());
        assert!(r.stderr.contains("is not an OpenSSH public key") && r.stderr.contains("authorized_keys.j2:"), "{bad:?}: {}", r.all());
        refused += 1;
    }
    // And what still works: a calendar expression of the grammar reaches the timer as written.
    p.write("inventories/offline.yml", &inventory(&public, &host_key, "  mysql_backup_schedule: \"*-*-* 03:30:00\"\n", true));
    let ok = common::run_provision(p.dir.path(), &["validate", "inventories/offline.yml"], &[]);
    assert_eq!(ok.code, 0, "{}", ok.all());
    assert_eq!(ssh(REPLICA, "test -e /tmp/pv-pwned && echo MARKER || echo none").trim(), "none");
    record(&format!("backup: {refused} bad values (file names, database names, schedules, keys) refused before connecting, at file:line"));
}

/// The 1-based line of the first line of `path` containing `needle`.
fn line_of(path: &std::path::Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(path).expect("read");
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1).unwrap_or_else(|| panic!("{needle} not in {}", path.display()))
}
