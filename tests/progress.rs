//! Live progress: on a terminal (a pseudo-terminal made by `script`), each host has one line
//! that is redrawn in place (connecting, probing, applying k/n, done) under the changes as
//! they are made; into a pipe, the same run prints plain lines and no terminal control.

mod common;
use common::{ssh, Project};
use std::process::Command;

#[test]
fn a_terminal_gets_live_host_lines_and_a_pipe_gets_plain_lines() {
    let p = Project::new(&[("t1", &["p"]), ("t2", &["p"])]);
    // The sleep keeps the apply running long enough for several redraws.
    p.write(
        "roles/p/tasks.yml",
        "- file: {path: /srv/pv-progress, state: directory}\n- command: {run: \"sleep 1\", creates: /srv/pv-progress/slept}\n- command: {run: \"touch /srv/pv-progress/slept\", creates: /srv/pv-progress/slept}\n- file: {path: /srv/pv-progress/a, content: \"a\\n\"}\n",
    );
    for h in ["t1", "t2"] {
        ssh(h, "rm -rf /srv/pv-progress");
    }
    let bin = env!("CARGO_BIN_EXE_provision");
    let on_tty = Command::new("script")
        .current_dir(p.dir.path())
        .env("NO_COLOR", "1")
        .args(["-qfec", &format!("{bin} inventories/test.yml"), "/dev/null"])
        .output()
        .expect("script (util-linux) runs");
    let tty = String::from_utf8_lossy(&on_tty.stdout);
    assert!(on_tty.status.success(), "{tty}");
    // Lines redrawn in place: cursor up and erase-line sequences, and each host's phases.
    assert!(tty.contains("\x1b[1A") && tty.contains("\x1b[2K"), "no redrawn lines on a terminal:\n{tty}");
    for h in ["t1", "t2"] {
        for phase in ["connecting", "applying 0/4", "done: 4 changed"] {
            assert!(tty.contains(&format!("{h}: {phase}")), "no `{h}: {phase}` line on a terminal:\n{tty}");
        }
        assert!(tty.contains(&format!("{h} p: + file /srv/pv-progress/a")), "the changes still print:\n{tty}");
    }
    assert!(tty.contains("2 hosts: 0 ok, 2 changed, 0 failed"), "the summary:\n{tty}");

    // The same run into a pipe: plain lines only.
    for h in ["t1", "t2"] {
        ssh(h, "rm -rf /srv/pv-progress");
    }
    let piped = p.run(&[]);
    assert_eq!(piped.code, 0, "{}", piped.all());
    assert!(!piped.stdout.contains('\x1b') && !piped.stdout.contains('\r'), "terminal control into a pipe:\n{}", piped.stdout);
    assert!(!piped.stdout.contains("t1: connecting") && piped.stdout.contains("t1 p: + file /srv/pv-progress/a"), "{}", piped.stdout);
    for h in ["t1", "t2"] {
        assert_eq!(ssh(h, "cat /srv/pv-progress/a"), "a\n");
        ssh(h, "rm -rf /srv/pv-progress");
    }
}
