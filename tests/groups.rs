//! Group variables and task includes end to end on a testbed host. Variables: role defaults
//! < inventory vars < group vars (in the order the groups are written) < host vars < -e,
//! read back from the host; a group named after a role gives that role's hosts variables
//! without listing them. Includes: `- include: FILE` runs roles/NAME/tasks/FILE in place.

mod common;
use common::{run_provision, ssh, Project};

const H: &str = "t2";

#[test]
fn group_vars_sit_between_inventory_and_host_vars() {
    let _serial = common::serial();
    let p = Project::new(&[(H, &["grp"])]);
    p.write("roles/grp/defaults.yml", "a: role\nb: role\nc: role\nd: role\ne: role\nf: role\n");
    p.write(
        "roles/grp/tasks.yml",
        "- file: {path: /srv/pv-groups, state: directory}\n- include: setup.yml\n- file: {path: /srv/pv-groups/vars, content: \"a={{ a }} b={{ b }} c={{ c }} d={{ d }} e={{ e }} f={{ f }}\\n\"}\n",
    );
    p.write("roles/grp/tasks/setup.yml", "- name: first included\n  file: {path: /srv/pv-groups/one, content: \"{{ c }}\\n\"}\n- include: more/nested.yml\n");
    p.write("roles/grp/tasks/more/nested.yml", "- file: {path: /srv/pv-groups/two, content: \"nested\\n\"}\n");
    let inv = std::fs::read_to_string(p.path("inventories/test.yml")).expect("inventory");
    let host_block = "    roles: [grp]\n";
    let inv = inv.replace(host_block, "    roles: [grp]\n    vars: {d: host}\n");
    p.write(
        "inventories/test.yml",
        &format!(
            "{inv}vars: {{b: inventory, c: inventory, d: inventory, e: inventory}}\ngroups:\n  eu:\n    hosts: [{H}]\n    vars: {{c: eu, d: eu}}\n  grp:\n    vars: {{c: role-group}}\n  other: [{H}]\n"
        ),
    );
    ssh(H, "rm -rf /srv/pv-groups");
    let r = p.run(&["-e", "e=extra"]);
    assert_eq!(r.code, 0, "{}", r.all());
    // a: only the role; b: the inventory; c: the later of two groups; d: the host over its
    // groups; e: -e over everything; f: the role's default.
    assert_eq!(ssh(H, "cat /srv/pv-groups/vars"), "a=role b=inventory c=role-group d=host e=extra f=role\n");
    // The included tasks ran, in place (the directory before them, in the same run).
    assert_eq!(ssh(H, "cat /srv/pv-groups/one /srv/pv-groups/two"), "role-group\nnested\n");
    let again = p.run(&["-e", "e=extra", "--format", "json"]);
    assert_eq!(again.changes(), 0, "a second run changes nothing: {}", again.all());
    ssh(H, "rm -rf /srv/pv-groups");

    // Includes that cannot work are refused before connecting, at the include's line.
    for (setup, says) in [
        ("- include: missing.yml\n", "there is no roles/grp/tasks/missing.yml"),
        ("- include: ../tasks.yml\n", "must name a .yml file under the role's tasks/ directory"),
        ("- include: more/nested.yml\n  when: x\n", "stands alone"),
        ("- include: setup.yml\n", "in a cycle"),
    ] {
        p.write("roles/grp/tasks/setup.yml", setup);
        let v = run_provision(p.dir.path(), &["validate", "inventories/test.yml"], &[]);
        assert!(v.code == 1 && v.stderr.contains("roles/grp/tasks/setup.yml:1:") && v.stderr.contains(says), "{setup}: {}", v.all());
    }
    p.write("roles/grp/tasks/setup.yml", "- file: {path: /srv/pv-groups/one, content: \"{{ c }}\\n\"}\n");

    // A group with variables but neither hosts nor a role of its name is refused, at its line.
    let inv = std::fs::read_to_string(p.path("inventories/test.yml")).expect("inventory");
    p.write("inventories/test.yml", &format!("{inv}  nosuchrole:\n    vars: {{x: 1}}\n"));
    let line = std::fs::read_to_string(p.path("inventories/test.yml")).expect("inventory").lines().position(|l| l == "  nosuchrole:").expect("line") + 1;
    let v = run_provision(p.dir.path(), &["validate", "inventories/test.yml"], &[]);
    assert_eq!(v.code, 1, "{}", v.all());
    assert!(v.stderr.contains(&format!("inventories/test.yml:{line}:3")) && v.stderr.contains("no host has a role `nosuchrole`"), "{}", v.all());
    // An unknown key in a group is refused like any other.
    let inv = inv.replace("    vars: {c: eu, d: eu}\n", "    vars: {c: eu, d: eu}\n    hots: [x]\n");
    p.write("inventories/test.yml", &inv);
    let v = run_provision(p.dir.path(), &["validate", "inventories/test.yml"], &[]);
    assert!(v.code == 1 && v.stderr.contains("unknown key `hots`") && v.stderr.contains("did you mean `hosts`?"), "{}", v.all());
}
