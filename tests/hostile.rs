//! Hostile values never become code. For every hostile value in every string argument of
//! every module: either an error naming the task's file and line before anything connects,
//! or the value arrives on the host as exactly itself (read back). No marker file ever
//! appears, and `--check` leaves the host byte-identical.

mod common;
use common::{serial, ssh, Project};

const H: &str = "t2";
const MARKER: &str = "/tmp/pv-pwned";

/// The values, each as it arrives from an inventory.
const VALUES: &[&str] = &[
    "'",
    "\"",
    "\\",
    "$(touch /tmp/pv-pwned)",
    "`touch /tmp/pv-pwned`",
    ";touch /tmp/pv-pwned",
    "a\nb",
    "-rf",
    "a b",
    "#",
    "%",
    "\x1b[2J",
    "é",
];

/// One argument of one module: the task (with `{{ V }}` where the value goes) and, when the
/// value is accepted, a sh check on the host that exits 0 when the value arrived as itself
/// (`$V` holds the value, `$N` the case number).
struct Arg {
    name: &'static str,
    task: &'static str,
    check: &'static str,
}

const ARGS: &[Arg] = &[
    Arg { name: "file path", task: "- file: {path: \"/srv/pvh/p{{ V }}\", content: \"x\\n\"}", check: "[ \"$(cat \"/srv/pvh/p$V\")\" = x ]" },
    Arg { name: "file path (whole)", task: "- file: {path: \"{{ V }}\", content: \"x\\n\"}", check: "false" },
    Arg { name: "file content", task: "- file: {path: \"/srv/pvh/content-{{ N }}\", content: \"{{ V }}\"}", check: "[ \"$(cat /srv/pvh/content-$N; echo .)\" = \"$V.\" ]" },
    Arg { name: "directory path", task: "- file: {path: \"/srv/pvh/d{{ V }}\", state: directory, mode: \"0750\"}", check: "[ \"$(stat -c %a \"/srv/pvh/d$V\")\" = 750 ]" },
    Arg { name: "link target", task: "- file: {path: \"/srv/pvh/link-{{ N }}\", state: link, target: \"/srv/pvh/t{{ V }}\"}", check: "[ \"$(readlink /srv/pvh/link-$N)\" = \"/srv/pvh/t$V\" ]" },
    Arg { name: "template variable", task: "- template: {src: v.j2, dest: \"/srv/pvh/tmpl-{{ N }}\"}", check: "[ \"$(cat /srv/pvh/tmpl-$N; echo .)\" = \"v=$V\n.\" ]" },
    Arg { name: "file owner", task: "- file: {path: \"/srv/pvh/owner-{{ N }}\", content: x, owner: \"{{ V }}\"}", check: "false" },
    Arg { name: "package", task: "- package: [\"{{ V }}\"]", check: "false" },
    Arg { name: "unit name", task: "- unit: {name: \"pvh{{ V }}\", content: \"[Service]\\nExecStart=/bin/true\\n\"}", check: "[ -f \"/etc/systemd/system/pvh$V.service\" ]" },
    Arg { name: "user name", task: "- user: {name: \"{{ V }}\"}", check: "false" },
    Arg { name: "user home", task: "- user: {name: \"pvh{{ N }}\", home: \"/srv/pvh/home{{ V }}\"}", check: "[ \"$(getent passwd pvh$N | cut -d: -f6)\" = \"/srv/pvh/home$V\" ]" },
    Arg { name: "user shell", task: "- user: {name: \"pvs{{ N }}\", shell: \"/bin/sh{{ V }}\"}", check: "[ \"$(getent passwd pvs$N | cut -d: -f7)\" = \"/bin/sh$V\" ]" },
    Arg { name: "group name", task: "- group: {name: \"{{ V }}\"}", check: "false" },
    Arg { name: "sudoers name", task: "- sudoers: {name: \"pvh{{ V }}\", user: nobody, commands: [/usr/bin/true]}", check: "visudo -cf \"/etc/sudoers.d/pvh$V\"" },
    Arg { name: "sudoers user", task: "- sudoers: {name: \"pvhu{{ N }}\", user: \"{{ V }}\", commands: [/usr/bin/true]}", check: "false" },
    Arg { name: "sudoers runas", task: "- sudoers: {name: \"pvhr{{ N }}\", user: nobody, runas: \"{{ V }}\", commands: [/usr/bin/true]}", check: "false" },
    Arg {
        name: "sudoers command",
        task: "- sudoers: {name: \"pvhc{{ N }}\", user: nobody, commands: [\"/usr/bin/systemctl status x{{ V }}\"]}",
        check: "visudo -cf /etc/sudoers.d/pvhc$N && [ \"$(sudo -l -U nobody | grep -c 'ALL$')\" = 0 ]",
    },
    Arg {
        name: "command run",
        task: "- command: {run: \"printf '%s' {{ V }} > /srv/pvh/run-{{ N }}\", creates: \"/srv/pvh/run-{{ N }}\"}",
        check: "[ \"$(cat /srv/pvh/run-$N; echo .)\" = \"$V.\" ]",
    },
    Arg {
        name: "command creates",
        task: "- command: {run: \"mkdir -p -- /srv/pvh/c{{ V }}\", creates: \"/srv/pvh/c{{ V }}\"}",
        check: "[ -d \"/srv/pvh/c$V\" ]",
    },
    Arg {
        name: "command unless",
        task: "- command: {run: \"mkdir -p -- /srv/pvh/u{{ V }}\", unless: \"test -e /srv/pvh/u{{ V }}\"}",
        check: "[ -d \"/srv/pvh/u$V\" ]",
    },
];

/// `provision validate` of the project: loads, lowers and renders, never connects.
fn validate(p: &Project) -> common::Run {
    common::run_provision(p.dir.path(), &["validate", "inventories/test.yml"], &[])
}

/// `s` single-quoted for sh.
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

/// The value as a YAML double-quoted scalar (JSON is YAML).
fn yaml(s: &str) -> String {
    serde_json::to_string(s).expect("json")
}

/// Hashes of everything the tasks could touch on the host, and the marker's absence.
fn host_state() -> String {
    ssh(
        H,
        "cd / && for d in /srv/pvh /etc/sudoers.d /etc/systemd/system /home; do find \"$d\" -xdev -printf '%p %y %m %u %g %l\\n' 2>/dev/null | sort; find \"$d\" -xdev -type f -exec sha256sum {} + 2>/dev/null | sort; done; \
         sha256sum /etc/passwd /etc/group /etc/shadow; ls -A /tmp | grep -v '^systemd-private' | sort; test -e /tmp/pv-pwned && echo MARKER",
    )
}

#[test]
fn every_hostile_value_in_every_argument_is_refused_or_arrives_as_itself() {
    let _s = serial();
    ssh(H, &format!("rm -rf /srv/pvh {MARKER} /etc/sudoers.d/pvh* /etc/systemd/system/pvh*; mkdir -p /srv/pvh; for u in $(getent passwd | cut -d: -f1 | grep '^pv[hs][0-9]'); do userdel \"$u\"; done"));
    let p = Project::new(&[(H, &["h"])]);
    p.write("roles/h/templates/v.j2", "v={{ V }}\n");

    // 1. Classify every (argument, value) with `validate`, which never connects.
    let mut accepted = Vec::new();
    let mut refused = 0;
    for (ai, arg) in ARGS.iter().enumerate() {
        for (vi, v) in VALUES.iter().enumerate() {
            let n = ai * 100 + vi;
            p.write("roles/h/tasks.yml", &format!("{}\n", arg.task.replace("{{ N }}", &n.to_string())));
            p.inventory(&[(H, &["h"])], &format!("vars:\n  V: {}\n", yaml(v)));
            let r = validate(&p);
            if r.code == 0 {
                assert_ne!(arg.check, "false", "{} accepted {v:?}, which it must refuse\n{}", arg.name, r.all());
                accepted.push((n, arg, *v));
            } else {
                refused += 1;
                assert_eq!(r.code, 1, "{} {v:?}\n{}", arg.name, r.all());
                let err = format!("{}{}", r.stdout, r.stderr);
                assert!(err.contains("tasks.yml:1:"), "{} {v:?}: the error must name the task's line\n{}", arg.name, r.all());
                assert!(!err.contains('\x1b'), "{} {v:?}: a raw ESC reached the terminal\n{}", arg.name, r.all());
            }
        }
    }
    // What must still work: ordinary punctuation in paths, content, templates and scripts.
    for must in ["file path", "file content", "template variable", "command run", "command creates", "command unless", "link target"] {
        let n = accepted.iter().filter(|(_, a, _)| a.name == must).count();
        assert!(n >= VALUES.len() - 3, "{must}: only {n} of {} values work", VALUES.len());
    }

    // 2. One role with every accepted case, each with its own variable.
    let mut tasks = String::new();
    let mut vars = String::from("vars:\n");
    for (n, arg, v) in &accepted {
        tasks.push_str(&arg.task.replace("{{ N }}", &n.to_string()).replace("{{ V }}", &format!("{{{{ V{n} }}}}")));
        tasks.push('\n');
        vars.push_str(&format!("  V{n}: {}\n", yaml(v)));
    }
    p.write("roles/h/tasks.yml", &tasks);
    p.write("roles/h/templates/v.j2", "v={{ V }}\n");
    // The template reads `V`: give it a per-case copy through a loop-free trick: one template per case.
    let mut tasks2 = String::new();
    for line in tasks.lines() {
        if let Some(rest) = line.strip_prefix("- template: {src: v.j2, dest: \"/srv/pvh/tmpl-") {
            let n: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            p.write(&format!("roles/h/templates/v{n}.j2"), &format!("v={{{{ V{n} }}}}\n"));
            tasks2.push_str(&format!("- template: {{src: v{n}.j2, dest: \"/srv/pvh/tmpl-{n}\"}}\n"));
        } else {
            tasks2.push_str(line);
            tasks2.push('\n');
        }
    }
    p.write("roles/h/tasks.yml", &tasks2);
    p.inventory(&[(H, &["h"])], &vars);

    // 3. --check changes nothing, byte for byte, and prints no raw control character.
    let before = host_state();
    let check = p.run(&["--check"]);
    assert_eq!(check.code, 2, "{}", check.all());
    assert!(!check.stdout.contains('\x1b'), "raw ESC in the plan\n{}", check.all());
    assert_eq!(host_state(), before, "--check changed the host");

    // 4. The apply, then every value read back as itself.
    let r = p.run(&[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!r.stdout.contains('\x1b'), "raw ESC in the apply's output\n{}", r.all());
    for (n, arg, v) in &accepted {
        let out = common::ssh_output(H, &format!("V={}; N={n}; {}", q(v), arg.check));
        assert!(out.status.success(), "{} {v:?}: the host does not hold the value as given\n{}", arg.name, String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(ssh(H, &format!("test -e {MARKER} && echo MARKER || echo clean")), "clean\n", "a value ran as code");
    let again = p.run(&["--format", "json"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(again.changes(), 0, "a second run changed something\n{}", again.all());
    common::record(&format!(
        "hostile: {} values x {} arguments: {} refused before connecting, {} read back exactly; --check left the host identical; no marker",
        VALUES.len(),
        ARGS.len(),
        refused,
        accepted.len()
    ));
    ssh(H, "rm -f /etc/sudoers.d/pvh*; for u in $(getent passwd | cut -d: -f1 | grep '^pv[hs][0-9]'); do userdel \"$u\"; done; rm -rf /srv/pvh /etc/systemd/system/pvh*; systemctl daemon-reload");
}

#[test]
fn the_canary_restore_script_puts_hostile_paths_back_and_runs_nothing() {
    let _s = serial();
    // A sudoers name with `"` and `$` never gets that far.
    let p = Project::new(&[(H, &["c"])]);
    p.write("roles/c/tasks.yml", "- sudoers: {name: \"x\\\"$(touch /tmp/pv-pwned)\", user: nobody, commands: [/usr/bin/true]}\n");
    let r = p.run(&[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(format!("{}{}", r.stdout, r.stderr).contains("tasks.yml:1:"), "{}", r.all());

    // Login files whose paths hold them anyway (a home directory may): the restore script
    // the canary runs on a failed login puts each one back exactly, and runs nothing.
    let dir = "/srv/pvc/h\"$(touch /tmp/pv-pwned)`touch /tmp/pv-pwned`";
    let files: Vec<String> = vec![format!("{dir}/a'b"), format!("{dir}/new \"file\"")];
    ssh(H, &format!("rm -rf /srv/pvc {MARKER} /var/lib/provision/canary; mkdir -p {d} /var/lib/provision/canary/saved; printf 'old\\n' > {f}; cp -a {f} /var/lib/provision/canary/saved/1; printf 'changed\\n' > {f}; printf 'created\\n' > {g}",
        d = q(dir), f = q(&files[0]), g = q(&files[1])));
    let refs: Vec<(&String, Option<&provision::shell::Script>)> = files.iter().map(|f| (f, None)).collect();
    let script = provision::apply::restore_script(&refs);
    let out = common::ssh_output(H, &format!("printf '%s' {} | sh", q(script.as_str())));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ssh(H, &format!("cat {}; test -e {} && echo still-there || echo removed", q(&files[0]), q(&files[1]))), "old\nremoved\n");
    assert_eq!(ssh(H, &format!("test -e {MARKER} && echo MARKER || echo clean")), "clean\n");
    ssh(H, "rm -rf /srv/pvc /var/lib/provision/canary");
}

#[test]
fn a_directory_swapped_for_a_link_is_not_changed_through_it() {
    let _s = serial();
    ssh(H, "rm -rf /srv/pvl /srv/pvl-target; mkdir -p /srv/pvl/d /srv/pvl-target; chmod 0700 /srv/pvl/d /srv/pvl-target");
    let p = Project::new(&[(H, &["l"])]);
    p.write("roles/l/tasks.yml", "- file: {path: /srv/pvl/d, state: directory, mode: \"0777\"}\n- file: {path: /srv/pvl/d/f, content: \"x\\n\"}\n");
    // The plan sees a directory; the apply finds a link to another directory.
    let check = p.run(&["--check"]);
    assert_eq!(check.code, 2, "{}", check.all());
    ssh(H, "rm -rf /srv/pvl/d && ln -s /srv/pvl-target /srv/pvl/d");
    let r = p.run(&[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(ssh(H, "stat -c %a /srv/pvl-target; ls -A /srv/pvl-target"), "700\n", "changed through the link");
    ssh(H, "rm -rf /srv/pvl /srv/pvl-target");
}

#[test]
fn silent_wrong_plans_are_errors() {
    let _s = serial();
    let p = Project::new(&[(H, &["w"])]);
    let cases = [
        ("- file: {path: /srv/pvw, state: directory}\n  loop: \"{{ 'abc' }}\"\n", "`loop` must give a list"),
        ("- file: {path: /srv/pvw, state: directory}\n  when: \"{{ nope == 1 }}\"\n", "undefined variable `nope`"),
        ("- file: {path: /srv/pvw, state: directory}\n  loop: \"{{ nope }}\"\n", "undefined variable"),
        ("- file: {path: /srv/pvw, src: /etc/passwd}\n", "outside the role's files/"),
        ("- file: {path: /srv/pvw, src: ../../../../etc/passwd}\n", "outside the role's files/"),
        ("- template: {src: ../../../../etc/passwd, dest: /srv/pvw}\n", "outside the role's templates/"),
        ("- command: {run: \"echo \\\"{{ x }}\\\"\", creates: /srv/pvw}\n", "inside double quotes"),
    ];
    for (tasks, want) in cases {
        p.write("roles/w/tasks.yml", tasks);
        p.inventory(&[(H, &["w"])], "vars:\n  x: 1\n");
        let r = validate(&p);
        assert_eq!(r.code, 1, "{tasks}\n{}", r.all());
        assert!(format!("{}{}", r.stdout, r.stderr).contains(want), "{tasks}: want {want}\n{}", r.all());
    }
    // What must still work: a default, a list, a file of the role.
    p.write("roles/w/files/ok.txt", "ok\n");
    p.write("roles/w/tasks.yml", "- file: {path: \"/srv/pvw-{{ item }}\", src: ok.txt}\n  loop: \"{{ ['a', 'b'] }}\"\n  when: \"{{ maybe | default(true) }}\"\n");
    let r = validate(&p);
    assert_eq!(r.code, 0, "{}", r.all());
}

#[test]
fn placeholder_addresses_are_refused_by_every_verb() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for args in [&["releases", "inventories/staging.yml"][..], &["rollback", "inventories/staging.yml"], &["do", "inventories/staging.yml", "puma:status"], &["inventories/staging.yml", "--check"]] {
        let r = common::run_provision(root, args, &[]);
        assert_ne!(r.code, 0, "{args:?}\n{}", r.all());
        assert!(format!("{}{}", r.stdout, r.stderr).contains("placeholder address"), "{args:?}\n{}", r.all());
    }
}
