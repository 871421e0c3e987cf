//! Fuzzing (bounded, inside the suite): the loaders and the probe-output parser take any
//! input without panicking or hanging. Inputs are both random and mutations of real ones.

use proptest::prelude::*;
use provision::yaml::Doc;
use std::path::Path;

const INVENTORY: &str = "stage: staging\nssh:\n  known_hosts: kh\nvars:\n  app: x\n  pw: !secret abc\nhosts:\n  web1:\n    address: 10.0.0.1\n    port: 22\n    roles: [nginx]\n    primary: yes\n    vars: {a: 1}\ngroups:\n  front: [web1]\n";
const PROBE: &str = "@@PV lock\n@@PV journal\nr/h\n@@PV paths\n/etc/x\tf\t644\troot\troot\t12\t\n@@PV sums\naaaa  /etc/x\n@@PV content /etc/x\naGVsbG8K\n@@PV packages\nnginx\tii \t1.22\n@@PV apt\nx\n@@PV candidates\ncurl:\n  Candidate: 7\n@@PV units\nId=a.service\nLoadState=loaded\n\n@@PV passwd\nd:x:1:1::/h:/bin/sh\n@@PV group\nd:x:1:a,b\n@@PV check c\n0\n@@PV validate v\n1\nYm9vbQ==\n@@PV end\n";

fn config() -> ProptestConfig {
    ProptestConfig { cases: 1500, max_shrink_iters: 200, timeout: 2000, ..ProptestConfig::default() }
}

/// Mutates `base` by replacing a byte range with `insert`.
fn mutate(base: &str, at: usize, len: usize, insert: &str) -> String {
    let bytes = base.as_bytes();
    let at = at % (bytes.len() + 1);
    let end = (at + len).min(bytes.len());
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(insert.as_bytes());
    out.extend_from_slice(&bytes[end..]);
    String::from_utf8_lossy(&out).into_owned()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn probe_parser_takes_anything(s in ".{0,400}") {
        let _ = provision::probe::parse(&s);
    }

    #[test]
    fn probe_parser_takes_mutated_output(at in 0usize..600, len in 0usize..40, insert in "[\\t\\n@PV a-z0-9=:/-]{0,30}") {
        let f = provision::probe::parse(&mutate(PROBE, at, len, &insert));
        prop_assert!(f.paths.len() <= 2);
    }

    #[test]
    fn inventory_loader_takes_mutated_inventories(at in 0usize..400, len in 0usize..30, insert in "[\\n :\\-\\[\\]{}!&*a-z0-9]{0,20}") {
        let text = mutate(INVENTORY, at, len, &insert);
        if let Ok(doc) = Doc::parse(Path::new("inv.yml"), text) {
            let _ = provision::inventory::Inventory::from_doc(doc).map_err(|e| e.to_string());
        }
    }

    #[test]
    fn inventory_loader_takes_anything(s in ".{0,300}") {
        if let Ok(doc) = Doc::parse(Path::new("inv.yml"), s) {
            let _ = provision::inventory::Inventory::from_doc(doc).map_err(|e| e.to_string());
        }
    }

    #[test]
    fn apply_event_parser_takes_anything(lines in proptest::collection::vec(".{0,60}", 0..20)) {
        let mut p = provision::apply::EventParser::default();
        for l in lines {
            let _ = p.line(&l);
        }
    }
}

/// The role loader on mutated role files: loads or reports, never panics.
#[test]
fn role_loader_takes_mutated_roles() {
    let tasks = "- name: a\n  template: {src: t.j2, dest: \"/etc/{{ app }}\", mode: \"0644\"}\n  notify: h\n- package: [nginx]\n  when: \"{{ x | default(true) }}\"\n- file: {path: /x, state: directory}\n  loop: [a, b]\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let role = dir.path().join("roles/r");
    std::fs::create_dir_all(role.join("templates")).expect("mkdir");
    std::fs::write(role.join("templates/t.j2"), "{{ app }}\n").expect("write");
    std::fs::write(role.join("handlers.yml"), "h:\n  unit: {name: x, state: restarted}\n").expect("write");
    std::fs::write(dir.path().join("inv.yml"), "stage: s\nvars: {app: a}\nhosts:\n  h: {address: 10.0.0.1, roles: [r]}\n").expect("write");
    let mut seed = 7u64;
    for _ in 0..400 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let at = (seed >> 20) as usize;
        let len = ((seed >> 8) % 12) as usize;
        let inserts = ["{{", "}}", "- ", ":", "\n", "  ", "loop: x", "when: [", "{%", "!secret", "notify: [", "'"];
        let insert = inserts[((seed >> 40) % inserts.len() as u64) as usize];
        std::fs::write(role.join("tasks.yml"), mutate(tasks, at, len, insert)).expect("write");
        let sel = provision::project::Selection { inventory: dir.path().join("inv.yml"), ..Default::default() };
        let _ = provision::project::Project::load(&sel).and_then(|p| std::sync::Arc::new(p).lower()).map(|_| ()).map_err(|e| e.to_string());
    }
}
