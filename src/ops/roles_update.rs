//! `provision roles update [DIR]`: brings a project's copies of the shipped roles up to this
//! binary's versions without losing a user's edits, the way dpkg treats conffiles.
//!
//! `init` records the hash of every role file it wrote in `roles/.shipped` (sha256sum's
//! format, so `sha256sum -c` reads it too). For each file this binary ships:
//! - missing in the project: written, unless the record says it was shipped (the user
//!   deleted it: left deleted);
//! - the same as the new version: nothing to do;
//! - as it was shipped (its hash is the recorded one): replaced by the new version;
//! - edited by the user (or not recorded: a project older than the record): kept, and the
//!   new version is written beside it as `FILE.shipped`, to merge by hand.
//!
//! Files are replaced atomically (a temp file renamed over), and `--check` says what would
//! happen and writes nothing.

use super::init::shipped_roles;
use crate::report::VerbReport;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The record of what was shipped, under `roles/`.
pub const RECORD: &str = ".shipped";

pub struct RolesUpdateOptions {
    /// The project's directory (holding `roles/`).
    pub dir: PathBuf,
    pub check: bool,
}

/// What happened to each shipped file, by path under `roles/`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RolesUpdateReport {
    pub check: bool,
    pub added: Vec<String>,
    pub updated: Vec<String>,
    /// Edited by the user: kept; the new version is beside it as `FILE.shipped`.
    pub kept: Vec<String>,
    /// Deleted by the user: left deleted.
    pub left_deleted: Vec<String>,
    /// Shipped before, not any more: left in place (a task may still use it).
    pub no_longer_shipped: Vec<String>,
    pub unchanged: usize,
    /// Files written (or, with `--check`, that would be).
    pub writes: usize,
}

impl VerbReport for RolesUpdateReport {
    fn ok(&self) -> bool {
        true
    }
    fn closing(&self) -> Vec<(bool, String)> {
        let verb = |done: &str, would: &str| if self.check { would.to_string() } else { done.to_string() };
        let mut lines = Vec::new();
        for f in &self.added {
            lines.push((false, format!("{} roles/{f}", verb("added", "would add"))));
        }
        for f in &self.updated {
            lines.push((false, format!("{} roles/{f}", verb("updated", "would update"))));
        }
        for f in &self.kept {
            lines.push((false, format!("kept your roles/{f}; the new version {} roles/{f}.shipped: merge it by hand", verb("is in", "would be written to"))));
        }
        for f in &self.left_deleted {
            lines.push((false, format!("left out roles/{f}: you deleted it")));
        }
        for f in &self.no_longer_shipped {
            lines.push((false, format!("roles/{f} is no longer shipped: left in place, remove it if nothing uses it")));
        }
        lines.push((false, format!("{} file(s) already up to date", self.unchanged)));
        lines
    }
    fn pending(&self) -> bool {
        self.check && self.writes > 0
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The record's text for `files` (path under roles/ → content).
pub fn record_text(files: &BTreeMap<String, Vec<u8>>) -> String {
    files.iter().map(|(p, c)| format!("{}  {p}\n", sha256_hex(c))).collect()
}

fn read_record(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(|l| l.split_once("  ")).map(|(h, p)| (p.to_string(), h.to_string())).collect()
}

/// Refuses a path under `roles` whose existing part leads elsewhere through a link (a role
/// directory linked to a shared copy): writing there would change files outside the project.
fn inside(roles: &Path, path: &Path) -> Result<()> {
    let root = roles.canonicalize().with_context(|| format!("cannot read `{}`", roles.display()))?;
    let mut existing = path.parent();
    while let Some(p) = existing {
        if let Ok(real) = p.canonicalize() {
            if !real.starts_with(&root) {
                bail!("`{}` leads outside the project's roles/ through a link (to `{}`): nothing was changed; update that copy by hand, or replace the link with a directory", p.display(), real.display());
            }
            return Ok(());
        }
        existing = p.parent();
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temp file renamed over it, with the old file's mode
/// (0644 for a new one: a temp file starts 0600).
fn replace(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create `{}`", parent.display()))?;
    let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644);
    let mut tmp = tempfile::NamedTempFile::new_in(parent).with_context(|| format!("cannot write in `{}`", parent.display()))?;
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode)).with_context(|| format!("cannot write `{}`", path.display()))?;
    std::io::Write::write_all(&mut tmp, bytes).with_context(|| format!("cannot write `{}`", path.display()))?;
    tmp.persist(path).map_err(|e| e.error).with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}

pub fn roles_update(opts: &RolesUpdateOptions) -> Result<RolesUpdateReport> {
    let roles = opts.dir.join("roles");
    if !roles.is_dir() {
        bail!("`{}` has no roles/ directory: run this in a project made by `provision init` (or give its directory)", opts.dir.display());
    }
    let shipped = shipped_roles();
    let recorded = read_record(&roles.join(RECORD));
    let mut report = RolesUpdateReport { check: opts.check, ..Default::default() };
    let mut writes: Vec<(PathBuf, &[u8])> = Vec::new();
    for (rel, new) in &shipped {
        let path = roles.join(rel);
        let current = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => Some(std::fs::read(&path).with_context(|| format!("cannot read `{}`", path.display()))?),
            Ok(_) => bail!("`{}` is not a regular file: nothing was changed; move it away and run again", path.display()),
            Err(_) => None,
        };
        match current {
            None if recorded.contains_key(rel) => report.left_deleted.push(rel.clone()),
            None => {
                report.added.push(rel.clone());
                writes.push((path, new));
            }
            Some(c) if &c == new => report.unchanged += 1,
            Some(c) if recorded.get(rel) == Some(&sha256_hex(&c)) => {
                report.updated.push(rel.clone());
                writes.push((path, new));
            }
            Some(_) => {
                report.kept.push(rel.clone());
                let beside = roles.join(format!("{rel}.shipped"));
                if std::fs::read(&beside).ok().as_ref() != Some(new) {
                    writes.push((beside, new));
                }
            }
        }
    }
    report.no_longer_shipped = recorded.keys().filter(|p| !shipped.contains_key(*p) && roles.join(p).is_file()).cloned().collect();
    report.writes = writes.len();
    // Every write is checked before any is made: a refusal leaves the project as it was.
    for (path, _) in &writes {
        inside(&roles, path)?;
    }
    if !opts.check {
        for (path, bytes) in &writes {
            replace(path, bytes)?;
        }
        // The record now says what this binary ships: a kept file stays "edited".
        replace(&roles.join(RECORD), record_text(&shipped).as_bytes())?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_linked_outside_is_refused_before_anything_is_written_and_modes_are_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let shared = tempfile::tempdir().expect("tempdir");
        let shipped = shipped_roles();
        for (rel, c) in &shipped {
            replace(&dir.path().join("roles").join(rel), c).expect("write");
        }
        let roles = dir.path().join("roles");
        assert_eq!(std::fs::metadata(roles.join("nginx/tasks.yml")).expect("stat").permissions().mode() & 0o777, 0o644, "a new file is 0644");
        std::fs::set_permissions(roles.join("puma/tasks.yml"), std::fs::Permissions::from_mode(0o640)).expect("chmod");
        replace(&roles.join("puma/tasks.yml"), b"old\n").expect("write");
        assert_eq!(std::fs::metadata(roles.join("puma/tasks.yml")).expect("stat").permissions().mode() & 0o777, 0o640, "a replaced file keeps its mode");
        // nginx/ is a link to a shared copy outside the project, whose tasks.yml is "old".
        std::fs::rename(roles.join("nginx"), shared.path().join("nginx")).expect("mv");
        std::os::unix::fs::symlink(shared.path().join("nginx"), roles.join("nginx")).expect("link");
        std::fs::write(shared.path().join("nginx/tasks.yml"), b"old\n").expect("write");
        let mut record = shipped.clone();
        record.insert("nginx/tasks.yml".into(), b"old\n".to_vec());
        record.insert("puma/tasks.yml".into(), b"old\n".to_vec());
        replace(&roles.join(RECORD), record_text(&record).as_bytes()).expect("record");
        let before = std::fs::read(roles.join("puma/tasks.yml")).expect("read");
        let err = roles_update(&RolesUpdateOptions { dir: dir.path().into(), check: false }).expect_err("refused");
        assert!(format!("{err:#}").contains("leads outside the project's roles/ through a link"), "{err:#}");
        assert_eq!(std::fs::read(shared.path().join("nginx/tasks.yml")).expect("read"), b"old\n", "the shared copy is untouched");
        assert_eq!(std::fs::read(roles.join("puma/tasks.yml")).expect("read"), before, "nothing else was written either");
    }

    #[test]
    fn updates_untouched_files_keeps_edits_and_respects_deletions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shipped = shipped_roles();
        let (edited, deleted, outdated, unknown) = ("nginx/tasks.yml", "redis/tasks.yml", "puma/tasks.yml", "sidekiq/tasks.yml");
        for (rel, c) in &shipped {
            replace(&dir.path().join("roles").join(rel), c).expect("write");
        }
        // The record says puma/tasks.yml was shipped as "old"; the project has "old".
        let mut record = shipped.clone();
        record.insert(outdated.into(), b"old\n".to_vec());
        replace(&dir.path().join("roles").join(RECORD), record_text(&record).as_bytes()).expect("record");
        replace(&dir.path().join("roles").join(outdated), b"old\n").expect("write");
        replace(&dir.path().join("roles").join(edited), b"# mine\n").expect("write");
        std::fs::remove_file(dir.path().join("roles").join(deleted)).expect("rm");
        std::fs::remove_file(dir.path().join("roles").join(unknown)).expect("rm");
        let mut record = read_record(&dir.path().join("roles").join(RECORD));
        record.remove(unknown);
        let text: String = record.iter().map(|(p, h)| format!("{h}  {p}\n")).collect();
        replace(&dir.path().join("roles").join(RECORD), text.as_bytes()).expect("record");

        let check = roles_update(&RolesUpdateOptions { dir: dir.path().into(), check: true }).expect("check");
        assert_eq!((check.updated.clone(), check.kept.clone(), check.left_deleted.clone(), check.added.clone()), (vec![outdated.to_string()], vec![edited.to_string()], vec![deleted.to_string()], vec![unknown.to_string()]));
        assert_eq!(std::fs::read(dir.path().join("roles").join(outdated)).expect("read"), b"old\n", "--check writes nothing");

        let done = roles_update(&RolesUpdateOptions { dir: dir.path().into(), check: false }).expect("update");
        assert_eq!(done.updated, vec![outdated.to_string()]);
        let read = |rel: &str| std::fs::read(dir.path().join("roles").join(rel)).ok();
        assert_eq!(read(outdated).as_ref(), shipped.get(outdated));
        assert_eq!(read(edited).as_deref(), Some(&b"# mine\n"[..]), "an edit is kept");
        assert_eq!(read(&format!("{edited}.shipped")).as_ref(), shipped.get(edited));
        assert_eq!(read(deleted), None, "a deletion is respected");
        assert_eq!(read(unknown).as_ref(), shipped.get(unknown));
        // A second update has nothing left to do but the kept edit.
        let again = roles_update(&RolesUpdateOptions { dir: dir.path().into(), check: false }).expect("again");
        assert!(again.updated.is_empty() && again.added.is_empty() && again.kept == vec![edited.to_string()] && again.writes == 0);
        let check = roles_update(&RolesUpdateOptions { dir: dir.path().into(), check: true }).expect("check");
        assert!(!check.pending(), "nothing left to write: {check:?}");
    }
}
