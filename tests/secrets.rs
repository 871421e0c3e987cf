//! Secrets are never printed and never world-readable: not in an assert message, not in a
//! transformed form (`| replace`, `| urlencode`, a variable built from one), not on the old
//! side of a diff after a rotation, not in a unit file others can read, not in `ps` on the
//! host, not in JSON. Every check reads the output and the host back.

mod common;
use common::{serial, ssh, Project};

const H: &str = "t2";
const PW: &str = "Hunter2'\"$(id)#%/x\\y";
const OLD_PW: &str = "OldSecret-rotated-9f3a";

/// Every form of the secret that must not appear: itself, the transformed forms the role
/// makes, and pieces long enough to identify it.
fn forms() -> Vec<String> {
    vec![PW.to_string(), PW.replace('H', "J"), "Hunter2%27%22%24%28id%29%23%25%2Fx%5Cy".into(), "Hunter2".into(), OLD_PW.into()]
}

fn assert_clean(what: &str, text: &str) {
    for f in forms() {
        assert!(!text.contains(&f), "{what} shows a secret ({f:?}):\n{text}");
    }
}

fn inventory(p: &Project, pw: &str) {
    p.inventory(
        &[(H, &["s"])],
        &format!("vars:\n  pw: !secret {}\n  db_url: \"mysql://app:{{{{ pw | urlencode }}}}@db/app\"\n", serde_json::to_string(pw).expect("json")),
    );
}

#[test]
fn no_form_of_a_secret_is_printed_or_left_readable() {
    let _s = serial();
    ssh(H, "rm -rf /srv/pvs /etc/systemd/system/pvs-secret.service; mkdir -p /srv/pvs; systemctl daemon-reload");
    let p = Project::new(&[(H, &["s"])]);

    // Rotation: the file holds the old secret first.
    inventory(&p, OLD_PW);
    p.write("roles/s/templates/old.conf.j2", "password = {{ pw }}\n");
    p.write("roles/s/tasks.yml", "- template: {src: old.conf.j2, dest: /srv/pvs/app.conf}\n- file: {path: /srv/pvs/rotated.conf, content: \"password = {{ pw }}\\n\"}\n");
    let r = p.run(&[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(ssh(H, "stat -c %a /srv/pvs/app.conf"), "600\n", "a file holding a secret is written 0600 by default");
    assert_clean("the first apply", &r.all());

    // The new version: the secret rotated and transformed, a derived variable, a unit with
    // the secret in Environment=, a secret on stdin, an assert that would print it.
    inventory(&p, PW);
    p.write("roles/s/templates/app.conf.j2", "password_hint = {{ pw | replace('H', 'J') }}\nurl = {{ db_url }}\n");
    p.write("roles/s/templates/pvs-secret.service.j2", "[Service]\nEnvironment=\"PW={{ pw | replace('\"', '') | replace('\\\\', '') | replace('%', '%%') }}\"\nExecStart=/bin/sleep 1\n");
    p.write(
        "roles/s/tasks.yml",
        "- template: {src: app.conf.j2, dest: /srv/pvs/app.conf}\n\
         - unit: {name: pvs-secret, template: pvs-secret.service.j2}\n\
         - command: {run: \"sleep 1; cat > /srv/pvs/from-stdin\", stdin: \"{{ pw }}\", creates: /srv/pvs/from-stdin}\n\
         - file: {path: /srv/pvs/rotated.conf, content: \"no password here\\n\"}\n",
    );
    for args in [&["--check"][..], &["--check", "--format", "json"]] {
        let check = p.run(args);
        assert_eq!(check.code, 2, "{}", check.all());
        assert_clean("--check", &check.all());
        assert!(check.stdout.contains("(secret)"), "the diff of a secret file is shown as (secret)\n{}", check.all());
    }

    // The apply, with `ps` polled on the host all along.
    ssh(H, "rm -f /tmp/pvs-ps; (for i in $(seq 1 300); do ps -eo args >> /tmp/pvs-ps; sleep 0.02; done) >/dev/null 2>&1 &");
    let r = p.run(&["--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_clean("the apply (JSON)", &r.all());
    std::thread::sleep(std::time::Duration::from_secs(7));
    let ps = ssh(H, "cat /tmp/pvs-ps; rm -f /tmp/pvs-ps");
    assert!(ps.lines().count() > 100, "ps was not polled");
    assert_clean("ps on the host", &ps);
    assert_eq!(ssh(H, "cat /srv/pvs/from-stdin"), PW, "the secret reached the host through stdin");
    assert_eq!(ssh(H, "stat -c %a /etc/systemd/system/pvs-secret.service /srv/pvs/app.conf /srv/pvs/from-stdin"), "600\n600\n644\n");

    // A secret in an assert message or in `creates` stops the run before it connects.
    for (tasks, want) in [
        ("- assert: {that: \"{{ false }}\", message: \"the password {{ pw }} is weak\"}\n", "the password (secret) is weak"),
        ("- command: {run: \"true\", creates: \"/srv/pvs/{{ pw }}\"}\n", "a secret appears"),
    ] {
        p.write("roles/s/tasks.yml", tasks);
        let r = p.run(&["--check"]);
        assert_eq!(r.code, 1, "{}", r.all());
        assert!(r.all().contains(want), "want {want}\n{}", r.all());
        assert_clean("an error before connecting", &r.all());
    }
    // A mode that lets everyone read a file holding a secret is refused.
    p.write("roles/s/tasks.yml", "- template: {src: app.conf.j2, dest: /srv/pvs/app.conf, mode: \"0644\"}\n");
    let r = p.run(&["--check"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.all().contains("lets every user of the host read it"), "{}", r.all());
    ssh(H, "rm -rf /srv/pvs /etc/systemd/system/pvs-secret.service; systemctl daemon-reload");
}

/// `!cmd` (a command's output, run on the controller in the inventory's directory) and `!age`
/// (a file decrypted with the `age` tool) reach the host through a template, and their
/// values appear in no output. Without an identity, `!age` stops a run before connecting
/// but not `validate`; a failing command stops everything, naming the command.
#[test]
fn command_and_age_secrets_reach_the_host_and_are_never_printed() {
    let _s = serial();
    const CMD_SECRET: &str = "cmd-secret-7f3a9'$x";
    const AGE_SECRET: &str = "age-secret-9c1d\"e";
    ssh(H, "rm -rf /srv/pvs-src");
    let p = Project::new(&[(H, &["src"])]);
    let dir = p.path("inventories");
    let run = |cmd: &str| {
        let o = std::process::Command::new("sh").args(["-c", cmd]).current_dir(&dir).output().expect("sh");
        assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
    };
    run("age-keygen -o key.txt 2>/dev/null && chmod 600 key.txt");
    run(&format!("printf '%s' {} | age -r \"$(age-keygen -y key.txt)\" -o db.age", provision::shell::quote(AGE_SECRET)));
    std::fs::write(dir.join("cmd-secret.txt"), format!("{CMD_SECRET}\n")).expect("write");
    p.inventory(&[(H, &["src"])], "vars:\n  from_cmd: !cmd \"cat cmd-secret.txt\"\n  from_age: !age db.age\n");
    p.write("roles/src/tasks.yml", "- template: {src: s.conf.j2, dest: /srv/pvs-src/s.conf}\n");
    p.write("roles/src/templates/s.conf.j2", "cmd={{ from_cmd }}\nage={{ from_age }}\n");
    let clean = |what: &str, text: &str| {
        for s in [CMD_SECRET, AGE_SECRET, "cmd-secret-7f3a9", "age-secret-9c1d"] {
            assert!(!text.contains(s), "{what} shows a secret ({s:?}):\n{text}");
        }
    };

    // No identity: validate passes (nothing connects), a run refuses before connecting.
    let v = common::run_provision(p.dir.path(), &["validate", "inventories/test.yml"], &[]);
    assert_eq!(v.code, 0, "{}", v.all());
    let r = p.run(&["--check"]);
    assert!(r.code == 1 && r.stderr.contains("PROVISION_AGE_IDENTITY"), "{}", r.all());
    clean("a run without identity", &r.all());

    let identity = dir.join("key.txt");
    let with_key = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_provision"))
            .current_dir(p.dir.path())
            .env("NO_COLOR", "1")
            .env("PROVISION_AGE_IDENTITY", &identity)
            .args([&["inventories/test.yml"], args].concat())
            .output()
            .expect("provision runs");
        (o.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
    };
    for args in [&["--check", "-v"][..], &["-v"], &["--format", "json"]] {
        let (code, out) = with_key(args);
        assert!(code == 0 || (code == 2 && args.contains(&"--check")), "{args:?}: {out}");
        clean(&format!("{args:?}"), &out);
    }
    assert_eq!(ssh(H, "cat /srv/pvs-src/s.conf; stat -c %a /srv/pvs-src/s.conf"), format!("cmd={CMD_SECRET}\nage={AGE_SECRET}\n600\n"));

    // A command that fails stops everything, naming the command and its line, not its output.
    p.inventory(&[(H, &["src"])], "vars:\n  from_cmd: !cmd \"cat cmd-secret.txt; echo oops >&2; exit 3\"\n  from_age: !secret x-unused\n");
    let v = common::run_provision(p.dir.path(), &["validate", "inventories/test.yml"], &[]);
    assert!(v.code == 1 && v.stderr.contains("inventories/test.yml:") && v.stderr.contains("failed") && v.stderr.contains("oops"), "{}", v.all());
    clean("a failed command", &v.all());
    ssh(H, "rm -rf /srv/pvs-src");
}
