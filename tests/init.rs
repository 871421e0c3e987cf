//! `provision init`: a project from the binary alone, run from a directory that is not this
//! repository. Its roles are byte for byte the shipped ones (the ones the stack tests
//! converge), its inventories validate, and an existing project is never touched.

mod common;
use common::run_provision;
use std::collections::BTreeMap;
use std::path::Path;

/// Every file under `dir` (links followed) by its path relative to `dir`.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).expect("under root").to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn init_writes_a_project_that_validates_and_never_overwrites() {
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let r = run_provision(elsewhere.path(), &["init", "shop", "--app", "shop"], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("provision bootstrap inventories/staging.yml"), "the next steps: {}", r.all());
    let project = elsewhere.path().join("shop");

    let shipped = files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("roles"));
    let mut written = files(&project.join("roles"));
    let record = String::from_utf8(written.remove(".shipped").expect("roles/.shipped records what was shipped")).expect("utf-8");
    assert_eq!(record.lines().count(), shipped.len(), "one line per shipped file:\n{record}");
    assert_eq!(written.keys().collect::<Vec<_>>(), shipped.keys().collect::<Vec<_>>(), "the roles' files");
    assert!(written == shipped, "a role file differs from the shipped one");

    for inv in ["inventories/staging.yml", "inventories/production.yml"] {
        let text = std::fs::read_to_string(project.join(inv)).expect("inventory");
        assert!(text.contains("app: shop") && text.contains("!env SHOP_SECRET_KEY_BASE") && !text.contains("flipper"), "{inv}:\n{text}");
        let v = run_provision(&project, &["validate", inv], &[]);
        assert_eq!(v.code, 0, "{inv}: {}", v.all());
        // Bootstrap takes the inventory as written (a host that connects as root is refused):
        // only the placeholder addresses and the unset secrets stop it, before connecting.
        let b = run_provision(&project, &["bootstrap", inv], &[]);
        assert_eq!(b.code, 1, "{inv}: {}", b.all());
        assert!(b.stderr.contains("placeholder address") && !b.stderr.contains("connects as root"), "{inv}: bootstrap: {}", b.all());
    }
    assert!(project.join(".gitignore").is_file());

    // A second init into the same directory, or into any non-empty one, writes nothing.
    std::fs::write(project.join("inventories/staging.yml"), "my own edits\n").expect("write");
    let before = files(&project);
    let again = run_provision(elsewhere.path(), &["init", "shop"], &[]);
    assert_eq!(again.code, 1, "{}", again.all());
    assert!(again.stderr.contains("is not an empty directory: nothing was written"), "{}", again.all());
    assert!(files(&project) == before, "init changed an existing project");
    // No half-written project is left beside it, and a bad name is refused before writing.
    for app in ["Shop;rm", "null", "true"] {
        let bad = run_provision(elsewhere.path(), &["init", "other", "--app", app], &[]);
        assert_eq!(bad.code, 1, "--app {app}: {}", bad.all());
    }
    // A rename that fails (DIR is a dangling link) leaves no temp project behind.
    std::os::unix::fs::symlink(elsewhere.path().join("nowhere"), elsewhere.path().join("dangling")).expect("symlink");
    let r = run_provision(elsewhere.path(), &["init", "dangling"], &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    std::fs::remove_file(elsewhere.path().join("dangling")).expect("rm");
    let left: Vec<String> = std::fs::read_dir(elsewhere.path()).expect("read_dir").flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, vec!["shop".to_string()], "what init left in the parent directory");
    // `roles update` in that project: an untouched project has nothing to do; an edited file
    // is kept, with the shipped version beside it; a deleted one stays deleted.
    let up = run_provision(&project, &["roles", "update", "--check"], &[]);
    assert_eq!(up.code, 0, "{}", up.all());
    std::fs::write(project.join("roles/nginx/tasks.yml"), "# my nginx\n").expect("edit");
    std::fs::remove_file(project.join("roles/redis/tasks.yml")).expect("rm");
    let before = files(&project);
    let check = run_provision(&project, &["roles", "update", "--check"], &[]);
    assert_eq!(check.code, 2, "--check with something to write exits 2: {}", check.all());
    assert!(check.stdout.contains("kept your roles/nginx/tasks.yml") && check.stdout.contains("left out roles/redis/tasks.yml: you deleted it"), "{}", check.all());
    assert!(files(&project) == before, "--check wrote something");
    let done = run_provision(&project, &["roles", "update", "--format", "json"], &[]);
    assert_eq!(done.code, 0, "{}", done.all());
    assert_eq!(std::fs::read_to_string(project.join("roles/nginx/tasks.yml")).expect("read"), "# my nginx\n");
    assert_eq!(std::fs::read(project.join("roles/nginx/tasks.yml.shipped")).expect("read"), shipped["nginx/tasks.yml"]);
    assert!(!project.join("roles/redis/tasks.yml").exists());
    assert_eq!(run_provision(&project, &["roles", "update", "--check"], &[]).code, 0, "nothing left to write");

    // An empty directory is fine.
    std::fs::create_dir(elsewhere.path().join("empty")).expect("mkdir");
    let r = run_provision(elsewhere.path(), &["init", "empty"], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(elsewhere.path().join("empty/roles/nginx/tasks.yml").is_file());
}
