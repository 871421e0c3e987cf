//! Variables and role files, checked by `validate` (nothing connects): values that use block
//! tags resolve as they did, a value derived from a secret does not hang the secret pass,
//! roles cannot run commands on the controller, and an include cannot leave tasks/.

mod common;
use common::Project;
use std::process::Command;
use std::time::{Duration, Instant};

/// `validate`, killed after 30 s (a hang is a failure, not a stuck suite).
fn validate(p: &Project) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_provision"))
        .current_dir(p.dir.path())
        .env("NO_COLOR", "1")
        .args(["validate", "inventories/test.yml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("provision runs");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("validate hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn project(defaults: &str, inventory_vars: &str, tasks: &str) -> Project {
    let p = Project::new(&[("unreachable", &["r"])]);
    p.inventory(&[("unreachable", &["r"])], inventory_vars);
    p.write("roles/r/defaults.yml", defaults);
    p.write("roles/r/tasks.yml", tasks);
    p
}

#[test]
fn values_with_block_tags_see_every_variable() {
    // `{% set y = y | ... %}` reads y although minijinja does not list it as used.
    let p = project(
        "z: \"{% set y = y | default(3) %}{{ y }}\"\nurl: \"{% set pw = pw | urlencode %}mysql://u:{{ pw }}@h\"\nport2: \"{% set port = port | int %}{{ port + 1 }}\"\n",
        "vars:\n  y: 5\n  pw: \"abc def\"\n  port: \"8080\"\n",
        "- assert: {that: \"z == '5' and url == 'mysql://u:abc%20def@h' and port2 == '8081'\", message: \"z={{ z }} url={{ url }} port2={{ port2 }}\"}\n",
    );
    let (code, out) = validate(&p);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_value_derived_from_a_secret_without_strings_does_not_hang() {
    let p = project("n: \"{{ pw | length }}\"\nb: \"{{ pw != '' }}\"\n", "vars:\n  pw: !secret hunter2secret\n", "- file: {path: /srv/n, content: \"{{ n }}\\n\"}\n");
    let (code, out) = validate(&p);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn roles_cannot_run_commands_on_the_controller_and_the_inventory_can() {
    let marker = std::env::temp_dir().join(format!("pv-role-cmd-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let p = project(&format!("rd: !cmd \"touch {}\"\n", marker.display()), "", "- file: {path: /srv/x, state: directory}\n");
    let (code, out) = validate(&p);
    assert!(code == 1 && out.contains("`!cmd` is for inventories") && out.contains("roles/r/defaults.yml"), "{out}");
    assert!(!marker.exists(), "a role's !cmd ran");
    let p = project("", "vars:\n  fine: !cmd \"echo from-the-inventory\"\n  empty: !secret placeholder\n", "- file: {path: /srv/x, content: \"{{ fine }}\\n\"}\n");
    let (code, out) = validate(&p);
    assert_eq!(code, 0, "{out}");
    let p = project("", "vars:\n  empty: !cmd \"printf ''\"\n", "- file: {path: /srv/x, state: directory}\n");
    let (code, out) = validate(&p);
    assert!(code == 1 && out.contains("printed nothing"), "{out}");
}

#[test]
fn an_include_stays_inside_the_roles_tasks_directory() {
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("f.yml"), "DB_PASSWORD=supersecret\n").expect("write");
    let p = project("", "", "- include: evil.yml\n");
    std::fs::create_dir_all(p.path("roles/r/tasks")).expect("mkdir");
    std::os::unix::fs::symlink(outside.path().join("f.yml"), p.path("roles/r/tasks/evil.yml")).expect("symlink");
    let (code, out) = validate(&p);
    assert!(code == 1 && out.contains("leads outside the role's tasks/ directory"), "{out}");
    assert!(!out.contains("supersecret"), "{out}");
    // tasks/tasks.yml is a file like any other, not a cycle with the role's tasks.yml.
    let p = project("", "", "- include: tasks.yml\n");
    p.write("roles/r/tasks/tasks.yml", "- file: {path: /srv/inner, state: directory}\n");
    let (code, out) = validate(&p);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_multi_line_secret_reshaped_by_a_filter_is_still_a_secret() {
    let key = "-----BEGIN TEST KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nVJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dV\n-----END TEST KEY-----\n";
    let vars = format!("vars:\n  key: !secret {}\n", serde_json::to_string(key).expect("json"));
    // World-readable content that holds the key, indented: refused like the plain key is.
    for content in ["{{ key }}", "{{ key | indent(2) }}"] {
        let p = project("", &vars, &format!("- file: {{path: /srv/k, mode: \"0644\", content: \"k:\\n  {content}\"}}\n"));
        let (code, out) = validate(&p);
        assert_eq!(code, 1, "{content}: a world-readable file holding a secret passed:\n{out}");
        assert!(!out.contains("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"), "{out}");
    }
    // The same without a mode is written owner-only, and validates.
    let p = project("", &vars, "- file: {path: /srv/k, content: \"k:\\n  {{ key | indent(2) }}\"}\n");
    let (code, out) = validate(&p);
    assert_eq!(code, 0, "{out}");
}
