//! The mail role on testbed host ml1, read back from the host: `--check` on the fresh host
//! changes nothing (the relevant paths hashed before and after); the converge installs
//! exim4 listening on loopback only; a message as the app's interceptor sends it (To:
//! rewritten to the administrators, X-Original-To: the user) and one to a plain outside
//! address both land in the one local mbox; exim's log shows local deliveries only and
//! `exim4 -bt` routes an outside address locally; a second converge changes nothing; a
//! router exim refuses never reaches the running config (the old file is put back). And,
//! without connecting, hostile mailbox names, a smarthost and the production stage are
//! refused.

mod common;
use common::{run_provision, ssh, Project};

const H: &str = "ml1";
const MBOX: &str = "/var/mail/mailcatch";

/// Everything the role or a `--check` could touch, as one digest: names, modes, owners,
/// sizes and the content of every file.
fn digest() -> String {
    let paths = "/etc/exim4 /var/lib/exim4 /var/mail /var/log/exim4 /var/lib/mailcatch /etc/passwd /etc/group /etc/shadow /etc/mailname /etc/aliases /var/lib/dpkg/status /usr/sbin/sendmail";
    ssh(
        H,
        &format!(
            "{{ find {paths} -printf '%p %y %m %U %G %s\\n' 2>/dev/null | sort; find {paths} -type f -exec sha256sum {{}} + 2>/dev/null | sort; }} | sha256sum"
        ),
    )
}

/// Waits until `cmd` prints `want` on the host (exim delivers in the background).
fn wait_for(cmd: &str, want: &str) -> String {
    let mut got = String::new();
    for _ in 0..60 {
        got = ssh(H, cmd);
        if got.trim() == want {
            return got;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    panic!("`{cmd}` printed {got:?}, not {want:?}");
}

#[test]
fn every_message_lands_in_the_local_mailbox_and_nothing_leaves() {
    let _serial = common::serial();
    let p = Project::new(&[(H, &["mail"])]);
    p.copy_role("mail");

    // --check on the fresh host: a plan with changes, and nothing on the host changed.
    let before = digest();
    let check = p.run(&["--check", "--format", "json"]);
    assert_eq!(check.code, 2, "{}", check.all());
    assert!(check.changes() > 0, "{}", check.all());
    assert_eq!(digest(), before, "--check changed the host");
    assert_eq!(ssh(H, "test -e /usr/sbin/exim4 && echo present || echo absent"), "absent\n");

    let started = std::time::Instant::now();
    let r = p.run(&["--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    common::record(&format!("mail: first converge of ml1, {} changes in {:.1} s", r.changes(), started.elapsed().as_secs_f64()));
    assert!(ssh(H, "dpkg-query -W -f='${Status}' exim4-daemon-light").contains("ok installed"));
    assert_eq!(ssh(H, "systemctl is-active exim4"), "active\n");
    // The mailbox's user cannot log in.
    assert!(ssh(H, "getent passwd mailcatch").trim_end().ends_with(":/usr/sbin/nologin"), "{}", ssh(H, "getent passwd mailcatch"));
    // The debconf file as written (the package's postinst did not rewrite it) is in force.
    assert!(ssh(H, "cat /etc/exim4/update-exim4.conf.conf").contains("dc_eximconfig_configtype='local'"));

    // Port 25 listens on loopback only.
    let listen = ssh(H, "ss -Hltn 'sport = :25' | awk '{print $4}'");
    assert!(!listen.trim().is_empty(), "nothing listens on port 25");
    for l in listen.lines() {
        assert!(l == "127.0.0.1:25" || l == "[::1]:25", "port 25 on {l}: {listen}");
    }

    // Two messages through the app's way out, /usr/sbin/sendmail -t: the first as the app's
    // interceptor sends it, the second to a plain outside address.
    ssh(H, "rm -f /var/mail/mailcatch; : > /var/log/exim4/mainlog");
    let out = common::ssh_output(
        H,
        "printf 'From: app@flipper.test\\nTo: admins@example.com\\nX-Original-To: user@example.com\\nSubject: pv-mail-1\\n\\nintercepted\\n' | /usr/sbin/sendmail -t \
         && printf 'From: app@flipper.test\\nTo: someone@example.org\\nSubject: pv-mail-2\\n\\nplain\\n' | /usr/sbin/sendmail -t",
    );
    assert!(out.status.success(), "sendmail: {}", String::from_utf8_lossy(&out.stderr));
    wait_for(&format!("grep -c '^From ' {MBOX}"), "2");
    wait_for("grep -c ' Completed$' /var/log/exim4/mainlog", "2");

    let mbox = ssh(H, &format!("cat {MBOX}"));
    let messages: Vec<&str> = mbox.split("\nFrom ").collect();
    let find = |subject: &str| *messages.iter().find(|m| m.contains(&format!("\nSubject: {subject}\n"))).unwrap_or_else(|| panic!("{subject} is not in the mailbox:\n{mbox}"));
    let first = find("pv-mail-1");
    for h in ["\nTo: admins@example.com\n", "\nX-Original-To: user@example.com\n", "\nEnvelope-to: admins@example.com\n"] {
        assert!(first.contains(h), "{h:?} not in\n{first}");
    }
    let second = find("pv-mail-2");
    for h in ["\nTo: someone@example.org\n", "\nEnvelope-to: someone@example.org\n"] {
        assert!(second.contains(h), "{h:?} not in\n{second}");
    }
    assert_eq!(ssh(H, &format!("stat -c '%U %a' {MBOX}")), "mailcatch 600\n");

    // The log: two deliveries, each by the catch-all router and transport, none to a host.
    let log = ssh(H, "cat /var/log/exim4/mainlog");
    let deliveries: Vec<&str> = log.lines().filter(|l| l.contains(" => ") || l.contains(" -> ")).collect();
    assert_eq!(deliveries.len(), 2, "{log}");
    for d in &deliveries {
        assert!(d.contains(" R=provision_catch_all T=provision_catch_all"), "{d}");
        assert!(!d.contains(" H="), "a delivery to a host: {d}");
    }
    for bad in ["remote_smtp", " ** ", " == ", " H="] {
        assert!(!log.contains(bad), "{bad:?} in the log:\n{log}");
    }
    let route = ssh(H, "exim4 -bt outside@example.net");
    assert!(route.contains("router = provision_catch_all, transport = provision_catch_all"), "{route}");
    assert!(!route.contains("remote_smtp") && !route.contains("host "), "{route}");

    let again = p.run(&["--format", "json"]);
    assert_eq!((again.code, again.changes()), (0, 0), "{}", again.all());

    // A router exim refuses: the verify fails, the old file is put back, and exim keeps
    // routing with the config it had.
    let router = "/etc/exim4/conf.d/router/050_provision-catch-all";
    let good = ssh(H, &format!("sha256sum {router}"));
    let template = std::fs::read_to_string(p.path("roles/mail/templates/router-catch-all.j2")).expect("template");
    p.write("roles/mail/templates/router-catch-all.j2", &format!("{template}  no_such_option = 1\n"));
    let broken = p.run(&[]);
    assert_eq!(broken.code, 1, "{}", broken.all());
    assert!(broken.all().contains("option \"no_such_option\" unknown"), "not refused by exim's check: {}", broken.all());
    assert_eq!(ssh(H, &format!("sha256sum {router}")), good);
    assert!(ssh(H, "exim4 -bt outside@example.net").contains("router = provision_catch_all"));
    assert_eq!(ssh(H, "systemctl is-active exim4"), "active\n");

    // The good router again: the run has nothing to change but the reload journaled by the
    // failed one; after it, nothing at all.
    p.write("roles/mail/templates/router-catch-all.j2", &template);
    let back = p.run(&["--format", "json"]);
    assert_eq!(back.code, 0, "{}", back.all());
    let quiet = p.run(&["--format", "json"]);
    assert_eq!((quiet.code, quiet.changes()), (0, 0), "{}", quiet.all());
}

#[test]
fn hostile_values_are_refused_before_connecting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Project { dir };
    p.copy_role("mail");
    let write = |stage: &str, vars: &str| {
        p.write("inventories/test.yml", &format!("stage: {stage}\nhosts:\n  m1:\n    address: 192.0.2.10\n    roles: [mail]\nvars: {vars}\n"))
    };
    let validate = || run_provision(p.dir.path(), &["validate", "inventories/test.yml"], &[]);

    for bad in ["'", "\"", "\\", "$(id)", "`id`", "a\nb", "-rf", "mail catch", "mail;catch", "Mailcatch", "../etc", "mail/catch", ""] {
        write("staging", &format!("{{mail_local_mailbox: {}}}", serde_json::to_string(bad).expect("json")));
        let v = validate();
        assert_eq!(v.code, 1, "{bad:?}: {}", v.all());
        assert!(v.stderr.contains("is not a valid user name"), "{bad:?}: {}", v.all());
    }
    write("staging", "{mail_local_mailbox: mail-catch_2}");
    let v = validate();
    assert_eq!(v.code, 0, "{}", v.all());

    write("staging", "{mail_relay_host: smtp.example.com}");
    let v = validate();
    assert_eq!(v.code, 1, "{}", v.all());
    assert!(v.stderr.contains("mail_relay_host is set"), "{}", v.all());

    write("production", "{}");
    let v = validate();
    assert_eq!(v.code, 1, "{}", v.all());
    assert!(v.stderr.contains("in production that would"), "{}", v.all());
}
