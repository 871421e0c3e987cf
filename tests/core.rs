//! End-to-end tests of the core on real testbed hosts (t1, t2): every module's lifecycle,
//! --check changing nothing, filters, exit codes, round trips, and the plan being the truth.
//! Every assertion reads the host back over ssh.

mod common;
use common::{serial, ssh, Project};

const T1: &str = "t1";
const T2: &str = "t2";

/// Applies, then checks that a second run changes nothing and makes one round trip.
fn converge(p: &Project) -> common::Run {
    let r = p.run(&["--format", "json"]);
    assert_eq!(r.code, 0, "apply failed\n{}", r.all());
    let again = p.run(&["--format", "json"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(again.changes(), 0, "second run changed something\n{}", again.all());
    r
}

#[test]
fn file_and_template_lifecycle() {
    let _s = serial();
    let p = Project::new(&[(T1, &["f"])]);
    ssh(T1, "rm -rf /srv/pv-file");
    p.write("roles/f/defaults.yml", "# the greeting\ngreeting: hello\nfile_mode: \"0640\"\n");
    p.write("roles/f/templates/app.conf.j2", "greeting = {{ greeting }}\nhost = {{ inventory_hostname }}\n");
    p.write("roles/f/files/static.txt", "static\n");
    p.write(
        "roles/f/tasks.yml",
        "- file: {path: /srv/pv-file, state: directory, mode: \"0755\"}\n\
         - template: {src: app.conf.j2, dest: /srv/pv-file/app.conf, mode: \"{{ file_mode }}\"}\n\
         - file: {path: /srv/pv-file/static.txt, src: static.txt}\n\
         - file: {path: /srv/pv-file/inline, content: \"inline\\n\", owner: nobody}\n\
         - file: {path: /srv/pv-file/current, state: link, target: /srv/pv-file/app.conf}\n",
    );
    // Create.
    converge(&p);
    assert_eq!(ssh(T1, "cat /srv/pv-file/app.conf"), "greeting = hello\nhost = t1\n");
    assert_eq!(ssh(T1, "stat -c '%a %U' /srv/pv-file/app.conf /srv/pv-file/inline"), "640 root\n644 nobody\n");
    assert_eq!(ssh(T1, "cat /srv/pv-file/static.txt; readlink /srv/pv-file/current"), "static\n/srv/pv-file/app.conf\n");

    // Modify: --check shows the diff and the mode change, and changes nothing.
    p.write("roles/f/defaults.yml", "greeting: bonjour\nfile_mode: \"0600\"\n");
    let check = p.run(&["--check"]);
    assert_eq!(check.code, 2, "{}", check.all());
    assert!(check.stdout.contains("~ file /srv/pv-file/app.conf  content, mode 0640 → 0600"), "{}", check.all());
    assert!(check.stdout.contains("-greeting = hello") && check.stdout.contains("+greeting = bonjour"), "{}", check.all());
    assert_eq!(ssh(T1, "cat /srv/pv-file/app.conf; stat -c %a /srv/pv-file/app.conf"), "greeting = hello\nhost = t1\n640\n");
    converge(&p);
    assert_eq!(ssh(T1, "cat /srv/pv-file/app.conf; stat -c %a /srv/pv-file/app.conf"), "greeting = bonjour\nhost = t1\n600\n");
    // No temp files are left behind by the atomic writes.
    assert_eq!(ssh(T1, "ls -A /srv/pv-file | grep -c '^\\.pv' || true"), "0\n");

    // Remove.
    p.write("roles/f/tasks.yml", "- file: {path: /srv/pv-file/app.conf, state: absent}\n- file: {path: /srv/pv-file/current, state: absent}\n");
    converge(&p);
    assert_eq!(ssh(T1, "ls /srv/pv-file | sort"), "inline\nstatic.txt\n");
}

#[test]
fn package_lifecycle() {
    let _s = serial();
    let p = Project::new(&[(T1, &["p"])]);
    ssh(T1, "apt-get remove -y -q tree >/dev/null 2>&1");
    p.write("roles/p/tasks.yml", "- package: [tree]\n");
    let first = converge(&p);
    assert_eq!(first.change_ids()[0].1, "package");
    assert_eq!(ssh(T1, "dpkg-query -W -f '${Status}' tree"), "install ok installed");
    p.write("roles/p/tasks.yml", "- package: {name: tree, state: absent}\n");
    let check = p.run(&["--check"]);
    assert_eq!(check.code, 2);
    assert!(check.stdout.contains("- package tree"), "{}", check.all());
    assert_eq!(ssh(T1, "dpkg-query -W -f '${Status}' tree"), "install ok installed");
    converge(&p);
    assert_ne!(ssh(T1, "dpkg-query -W -f '${Status}' tree 2>/dev/null"), "install ok installed");
}

#[test]
fn unit_lifecycle_with_handler() {
    let _s = serial();
    let p = Project::new(&[(T1, &["u"])]);
    ssh(T1, "systemctl disable --now pvdemo 2>/dev/null; rm -f /etc/systemd/system/pvdemo.service /srv/pvdemo.restarts; systemctl daemon-reload");
    p.write("roles/u/defaults.yml", "# what the service sleeps\nsleep_for: infinity\n");
    p.write("roles/u/templates/pvdemo.service.j2", "[Unit]\nDescription=pv demo\n[Service]\nExecStartPre=/bin/sh -c 'echo x >> /srv/pvdemo.restarts'\nExecStart=/bin/sleep {{ sleep_for }}\n[Install]\nWantedBy=multi-user.target\n");
    p.write("roles/u/tasks.yml", "- unit: {name: pvdemo, template: pvdemo.service.j2, enabled: true, state: started}\n  notify: restart pvdemo\n");
    p.write("roles/u/handlers.yml", "restart pvdemo:\n  unit: {name: pvdemo, state: restarted}\n");
    converge(&p);
    assert_eq!(ssh(T1, "systemctl is-enabled pvdemo; systemctl is-active pvdemo"), "enabled\nactive\n");
    // started, then restarted by the handler
    assert_eq!(ssh(T1, "wc -l < /srv/pvdemo.restarts"), "2\n");

    p.write("roles/u/defaults.yml", "sleep_for: \"3600\"\n");
    let check = p.run(&["--check"]);
    assert_eq!(check.code, 2);
    assert!(check.stdout.contains("+ExecStart=/bin/sleep 3600"), "{}", check.all());
    assert!(check.stdout.contains("* handler restart pvdemo"), "{}", check.all());
    assert!(ssh(T1, "cat /etc/systemd/system/pvdemo.service").contains("sleep infinity"));
    converge(&p);
    assert!(ssh(T1, "systemctl show -p ExecStart pvdemo").contains("/bin/sleep 3600"), "daemon-reload and restart happened");
    assert_eq!(ssh(T1, "wc -l < /srv/pvdemo.restarts"), "3\n");

    p.write("roles/u/tasks.yml", "- unit: {name: pvdemo, enabled: false, state: stopped}\n");
    converge(&p);
    assert_eq!(ssh(T1, "systemctl is-enabled pvdemo; systemctl is-active pvdemo"), "disabled\ninactive\n");
    p.write("roles/u/tasks.yml", "- file: {path: /etc/systemd/system/pvdemo.service, state: absent}\n");
    converge(&p);
    assert_eq!(ssh(T1, "test -e /etc/systemd/system/pvdemo.service && echo present || echo gone"), "gone\n");
}

#[test]
fn sudoers_user_group_and_command_lifecycle() {
    let _s = serial();
    let p = Project::new(&[(T1, &["s"])]);
    ssh(T1, "rm -f /etc/sudoers.d/pv-ops /srv/pv-cmd; userdel -r pvops 2>/dev/null; groupdel pvteam 2>/dev/null; true");
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBk4kIuqK1wOE0y5s8DX0vcDlLIHZVDGL9cb3T5N9Hw0 test@pv";
    p.write(
        "roles/s/tasks.yml",
        &format!(
            "- group: {{name: pvteam}}\n\
             - user: {{name: pvops, shell: /bin/bash, groups: [pvteam], authorized_keys: [\"{key}\"]}}\n\
             - sudoers: {{name: pv-ops, user: pvops, commands: [/usr/bin/systemctl restart pvdemo]}}\n\
             - command: {{run: \"id pvops > /srv/pv-cmd\", creates: /srv/pv-cmd}}\n"
        ),
    );
    converge(&p);
    assert!(ssh(T1, "id pvops").contains("(pvteam)"));
    assert_eq!(ssh(T1, "cat /home/pvops/.ssh/authorized_keys; stat -c '%a %U' /home/pvops/.ssh/authorized_keys"), format!("{key}\n600 pvops\n"));
    assert_eq!(ssh(T1, "stat -c '%a %U:%G' /etc/sudoers.d/pv-ops"), "440 root:root\n");
    assert!(ssh(T1, "sudo -l -U pvops").contains("/usr/bin/systemctl restart pvdemo"));
    assert!(ssh(T1, "cat /srv/pv-cmd").contains("pvops"));

    // A rule outside the sudoers grammar is refused before connecting, naming the line.
    p.write("roles/s/tasks.yml", "- sudoers: {name: pv-ops, user: pvops, runas: \"root,,\", commands: [/usr/bin/true]}\n");
    let r = p.run(&["--check"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("tasks.yml:1:") && r.stderr.contains("`runas: root,,` is not a user name"), "{}", r.all());
    // A file visudo rejects: an error in --check and in apply, and the file in place stays.
    p.write("roles/s/tasks.yml", "- file: {path: /etc/sudoers.d/pv-ops, content: \"pvops ALL=(root,,) /usr/bin/true\\n\", mode: \"0440\", validate: \"visudo -cf %s\"}\n");
    let before = ssh(T1, "cat /etc/sudoers.d/pv-ops");
    for args in [&["--check"][..], &[][..]] {
        let r = p.run(args);
        assert_eq!(r.code, 1, "{}", r.all());
        assert!(r.stdout.contains("visudo -cf") && r.stdout.contains("syntax error"), "{}", r.all());
        assert_eq!(ssh(T1, "cat /etc/sudoers.d/pv-ops"), before);
    }

    // Changes and removal.
    p.write("roles/s/tasks.yml", "- user: {name: pvops, shell: /bin/sh}\n- file: {path: /etc/sudoers.d/pv-ops, state: absent}\n");
    let check = p.run(&["--check"]);
    assert!(check.stdout.contains("~ user pvops  shell /bin/bash → /bin/sh"), "{}", check.all());
    assert_eq!(ssh(T1, "getent passwd pvops | cut -d: -f7"), "/bin/bash\n");
    converge(&p);
    assert_eq!(ssh(T1, "getent passwd pvops | cut -d: -f7; test -e /etc/sudoers.d/pv-ops || echo gone"), "/bin/sh\ngone\n");
}

#[test]
fn hosts_run_in_parallel_filters_and_exit_codes() {
    let _s = serial();
    let p = Project::new(&[(T1, &["a", "b"]), (T2, &["a"])]);
    ssh(T1, "rm -rf /srv/pv-par");
    ssh(T2, "rm -rf /srv/pv-par");
    p.write("roles/a/tasks.yml", "- file: {path: /srv/pv-par, state: directory}\n- command: {run: \"date +%s.%N > /srv/pv-par/start; sleep 2; date +%s.%N > /srv/pv-par/end\", creates: /srv/pv-par/end}\n");
    p.write("roles/b/tasks.yml", "- file: {path: /srv/pv-par/b, content: \"b\\n\"}\n");

    // --limit: only t2.
    let r = p.run(&["--limit", "t2"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(ssh(T1, "test -e /srv/pv-par && echo yes || echo no"), "no\n");
    assert_eq!(ssh(T2, "test -e /srv/pv-par/end && echo yes"), "yes\n");
    ssh(T2, "rm -rf /srv/pv-par");

    // --role: only role a, on both hosts, in parallel (their 2 s commands overlap).
    assert_eq!(p.run(&["--check", "--role", "a"]).code, 2);
    let r = p.run(&["--role", "a"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(ssh(T1, "test -e /srv/pv-par/b && echo yes || echo no"), "no\n");
    let span = |h: &str| -> (f64, f64) {
        let out = ssh(h, "cat /srv/pv-par/start /srv/pv-par/end");
        let v: Vec<f64> = out.lines().map(|l| l.parse().expect("a timestamp")).collect();
        (v[0], v[1])
    };
    let (s1, e1) = span(T1);
    let (s2, e2) = span(T2);
    assert!(s1 < e2 && s2 < e1, "the two hosts ran one after the other: t1 {s1}..{e1}, t2 {s2}..{e2}");

    // Exit codes: 2 when --check finds changes, 0 when none, 1 when a host fails.
    assert_eq!(p.run(&["--check"]).code, 2);
    assert_eq!(p.run(&[]).code, 0);
    assert_eq!(p.run(&["--check"]).code, 0);
    p.inventory(&[(T1, &["a", "b"]), ("unreachable", &["a"])], "");
    let r = p.run(&[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("unreachable: ") && r.stdout.contains("cannot connect"), "{}", r.all());
    assert!(r.stdout.contains("t1: ok=3 changed=0 failed=0"), "the reachable host finished: {}", r.all());
}

#[test]
fn a_no_op_run_makes_one_round_trip_per_host() {
    let _s = serial();
    let p = Project::new(&[(T1, &["n"]), (T2, &["n"])]);
    for h in [T1, T2] {
        ssh(h, "rm -rf /srv/pv-rt");
    }
    let mut tasks = String::new();
    // Enough resources that the probe script is far larger than one read of sh's stdin.
    for i in 0..200 {
        tasks.push_str(&format!("- file: {{path: /srv/pv-rt/f{i}, content: \"{i}\\n\"}}\n"));
    }
    p.write("roles/n/tasks.yml", &format!("- file: {{path: /srv/pv-rt, state: directory}}\n- package: [coreutils, sudo]\n- unit: {{name: ssh, enabled: true, state: started}}\n{tasks}"));
    let first = p.run(&["-v"]);
    assert_eq!(first.code, 0, "{}", first.all());
    assert!(first.stdout.contains("round_trips=2"), "a changing run is probe + apply: {}", first.all());
    let noop = p.run(&["-v"]);
    assert_eq!(noop.code, 0, "{}", noop.all());
    for h in [T1, T2] {
        assert!(noop.stdout.contains(&format!("{h}: ok=204 changed=0 failed=0  round_trips=1 ")), "{}", noop.all());
    }
    let j = p.run(&["--format", "json"]).json();
    for h in j["hosts"].as_array().expect("hosts") {
        assert_eq!(h["round_trips"], 1);
        common::record(&format!(
            "core: no-op of 204 resources on {}: 1 round trip, connect {} ms, probe {} ms",
            h["host"].as_str().unwrap_or_default(),
            h["timings_ms"]["connect"],
            h["timings_ms"]["probe"]
        ));
    }
}

#[test]
fn the_plan_is_the_truth() {
    let _s = serial();
    let p = Project::new(&[(T1, &["t"]), (T2, &["t"])]);
    for h in [T1, T2] {
        ssh(h, "rm -rf /srv/pv-truth; userdel -r pvtruth 2>/dev/null; true");
    }
    p.write("roles/t/defaults.yml", "# a value\nv: one\n");
    p.write("roles/t/templates/c.j2", "v={{ v }}\n");
    p.write(
        "roles/t/tasks.yml",
        "- user: {name: pvtruth}\n\
         - file: {path: /srv/pv-truth, state: directory, owner: pvtruth}\n\
         - template: {src: c.j2, dest: /srv/pv-truth/c, owner: pvtruth}\n  notify: touch\n\
         - file: {path: /srv/pv-truth/l, state: link, target: /srv/pv-truth/c}\n",
    );
    p.write("roles/t/handlers.yml", "touch:\n  command: {run: \"cat >> /srv/pv-truth/handled\", stdin: \"handled\\n\"}\n");
    for round in 0..2 {
        let check = p.run(&["--check", "--format", "json"]);
        assert_eq!(check.code, 2, "{}", check.all());
        let apply = p.run(&["--format", "json"]);
        assert_eq!(apply.code, 0, "{}", apply.all());
        assert_eq!(check.change_ids(), apply.change_ids(), "round {round}: --check and apply differ");
        assert!(apply.json()["hosts"][0]["changes"].as_array().expect("changes").iter().all(|c| c["status"] == "done"));
        if round == 0 {
            // A fresh host: the owner does not exist yet, so the plan states its assumption.
            assert!(check.stdout.contains("user `pvtruth` is created by user pvtruth"), "{}", check.all());
            p.write("roles/t/defaults.yml", "v: two\n");
        }
    }
    assert_eq!(ssh(T1, "cat /srv/pv-truth/c; wc -l < /srv/pv-truth/handled"), "v=two\n2\n");
    // The handler (fed on stdin) cleared its journal entry: nothing is pending.
    assert_eq!(ssh(T1, "cat /var/lib/provision/pending-handlers"), "");
    assert_eq!(p.run(&["--format", "json"]).changes(), 0);
}

#[test]
fn errors_before_connecting_name_file_and_line_and_connect_nowhere() {
    // Hosts are unreachable on purpose: any attempt to connect would show in the error.
    let p = Project::new(&[("unreachable", &["x"])]);
    p.write("roles/x/templates/t.j2", "a\nb = {{ not_defined_anywhere }}\n");
    p.write("roles/x/tasks.yml", "- template: {src: t.j2, dest: /srv/x}\n");
    for args in [&["--check"][..], &[][..]] {
        let r = p.run(args);
        assert_eq!(r.code, 1, "{}", r.all());
        assert!(r.stderr.contains("roles/x/templates/t.j2:2:") && r.stderr.contains("not_defined_anywhere"), "{}", r.all());
        assert!(r.stderr.contains("before connecting") && !r.all().contains("cannot connect"), "{}", r.all());
    }
    let v = common::run_provision(p.dir.path(), &["validate", "inventories/test.yml"], &[]);
    assert_eq!(v.code, 1);
    assert!(v.stderr.contains("t.j2:2:"), "{}", v.all());

    p.write("inventories/test.yml", "stage: test\nhosts:\n  a:\n    address: 127.0.0.1\n    roles: [x\n");
    let r = p.run(&["--check"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("inventories/test.yml:") && r.stderr.contains("invalid YAML"), "{}", r.all());
    assert!(!r.all().contains("cannot connect"));
}
