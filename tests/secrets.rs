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
