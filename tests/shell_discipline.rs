//! How "no value becomes code" is enforced: the transport runs only `shell::Script`, whose
//! text is private. A script is made by `sh!` (a literal format string, checked at compile
//! time to have only `{}` placeholders, every argument quoted) or by `Script::user_code` for
//! a role's own code. This test pins where `user_code` may be called, and that nothing but
//! the `sh!` macro calls the macro's constructor.

use std::path::Path;

/// The places that hand a role's own code (rendered with its values quoted) to the host.
const USER_CODE_ALLOWED: &[&str] = &["src/modules/command.rs", "src/modules/file.rs", "src/actions.rs", "src/ops/release.rs"];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn only_the_shell_module_and_role_code_sites_make_scripts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut offenders = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(f).expect("read");
        // Code before the unit tests of the file: tests may build scripts freely.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        if rel != "src/shell.rs" && code.contains("from_checked_format") {
            offenders.push(format!("{rel}: calls the sh! macro's constructor directly"));
        }
        if rel != "src/shell.rs" && code.contains("user_code") && !USER_CODE_ALLOWED.contains(&rel.as_str()) {
            offenders.push(format!("{rel}: makes a Script from text with user_code"));
        }
        if code.contains("Step::Shell(format!") || code.contains(".shell(format!") {
            offenders.push(format!("{rel}: formats a script with format!"));
        }
    }
    assert!(offenders.is_empty(), "script text built outside the shell module:\n{}", offenders.join("\n"));
}
