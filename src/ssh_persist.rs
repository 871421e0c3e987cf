//! Persistent SSH masters (opt-in: `ssh: {persist: SECONDS}` or `--persist SECONDS`): a
//! master outlives the run for that long after its last use, so `--check` followed by the
//! apply, or repeated runs, skip the handshake, as Ansible's ControlPersist does.
//!
//! What keeps this safe:
//! - the masters live in a directory of the user's own (`$XDG_RUNTIME_DIR/provision-ssh`,
//!   else `/tmp/provision-ssh-UID`), mode 0700, refused when it is anyone else's or a link:
//!   a master is never shared across users;
//! - a master is found by a name hashed from everything that decided how it was made (user,
//!   address, port, identity file, and the known_hosts file's path AND content): a host
//!   whose key was removed or changed in known_hosts gets a new master, checked strictly;
//! - a master is used only after `ssh -O check` answers; a dead one is cleaned away;
//! - the masters end by themselves `persist` seconds after their last use (ssh's
//!   ControlPersist), leaving nothing running.
//!
//! The lockout canary and bootstrap never use a persistent master: they need a fresh login.

use crate::inventory::{Host, SshSettings};
use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The prefix openssh gives the directory of each master it launches.
const MASTER_DIR_PREFIX: &str = ".ssh-connection";

/// The directory of this user's persistent masters, created when missing.
pub fn directory() -> Result<PathBuf> {
    let uid = current_uid();
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(run) => PathBuf::from(run).join("provision-ssh"),
        None => PathBuf::from(format!("/tmp/provision-ssh-{uid}")),
    };
    match std::fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Created private: never open to others, not even for a moment.
            std::fs::DirBuilder::new().mode(0o700).create(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Err(e) => return Err(anyhow!("cannot read {}: {e}", dir.display())),
        Ok(m) => {
            if !m.is_dir() || m.uid() != uid || m.mode() & 0o077 != 0 {
                bail!(
                    "{} is not a private directory of this user (a link, someone else's, or open to others): persistent SSH masters are not used through it; remove it",
                    dir.display()
                );
            }
        }
    }
    Ok(dir)
}

/// The caller's user id, read from /proc (no libc call needed).
fn current_uid() -> u32 {
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX)
}

/// The name of `host`'s master in the directory: what made it, hashed.
pub fn master_name(host: &Host, ssh: &SshSettings) -> String {
    let mut h = Sha256::new();
    for part in [host.user.as_str(), host.address.as_str(), &host.port.to_string()] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    // The key that logged in: the identity file's content (a replaced key must log in again),
    // or without one, the agent this run would use.
    match &ssh.identity_file {
        Some(p) => {
            h.update(p.display().to_string().as_bytes());
            h.update([0]);
            h.update(std::fs::read(p).unwrap_or_default());
        }
        None => h.update(std::env::var_os("SSH_AUTH_SOCK").map(|s| s.to_string_lossy().into_owned()).unwrap_or_default().as_bytes()),
    }
    h.update([0]);
    h.update(ssh.known_hosts.display().to_string().as_bytes());
    h.update([0]);
    // A host key removed or replaced in known_hosts must not be bypassed by an old master.
    h.update(std::fs::read(&ssh.known_hosts).unwrap_or_default());
    let digest = h.finalize();
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// The directory of one master that `entry`'s link names, when it is exactly
/// `dir/.ssh-connectionXXXX/master` (one plain component, no `..`, no other place).
fn master_dir_of(dir: &Path, entry: &Path) -> Option<PathBuf> {
    let target = std::fs::read_link(entry).ok()?;
    let master_dir = target.parent()?;
    let component = master_dir.file_name()?.to_str()?;
    let exact = master_dir.parent() == Some(dir) && target.file_name().is_some_and(|f| f == "master") && component.starts_with(MASTER_DIR_PREFIX) && !component.contains('/') && component != ".." && component != ".";
    exact.then(|| dir.join(component))
}

/// The control socket a live-looking entry `name` points at, if any. The entry is a link to
/// a socket inside `dir`; anything else is removed.
pub fn recorded_socket(dir: &Path, name: &str) -> Option<PathBuf> {
    let entry = dir.join(name);
    std::fs::symlink_metadata(&entry).ok()?;
    let target = master_dir_of(dir, &entry).map(|d| d.join("master"));
    if let Some(target) = target.filter(|t| std::fs::symlink_metadata(t).is_ok_and(|m| m.uid() == current_uid())) {
        Some(target)
    } else {
        forget(dir, name);
        None
    }
}

/// Records `socket` as the master of `name` (atomically: a link renamed into place).
pub fn record(dir: &Path, name: &str, socket: &Path) -> Result<()> {
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(socket, &tmp).with_context(|| format!("cannot record the SSH master in {}", dir.display()))?;
    std::fs::rename(&tmp, dir.join(name)).with_context(|| format!("cannot record the SSH master in {}", dir.display()))
}

/// Removes the entry `name` and the directory of the master it pointed at.
pub fn forget(dir: &Path, name: &str) {
    let entry = dir.join(name);
    if let Some(master_dir) = master_dir_of(dir, &entry) {
        let _ = std::fs::remove_dir_all(master_dir);
    }
    let _ = std::fs::remove_file(entry);
}

/// Removes what masters that ended left behind: their directories (a log, no socket) and
/// entries pointing at nothing. Live masters are kept, and so is a directory younger than
/// `settle` (another run may be launching its master there right now).
pub fn sweep(dir: &Path, settle: std::time::Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let is_link = e.file_type().is_ok_and(|t| t.is_symlink());
        let settled = e.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok()).is_some_and(|age| age > settle);
        if name.starts_with(MASTER_DIR_PREFIX) && e.file_type().is_ok_and(|t| t.is_dir()) && settled && !path.join("master").exists() {
            let _ = std::fs::remove_dir_all(&path);
        } else if is_link && !path.exists() {
            let _ = std::fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(address: &str) -> Host {
        let text = format!("stage: s\nhosts:\n  h: {{address: {address}, roles: []}}\n");
        let doc = crate::yaml::Doc::parse(Path::new("inv.yml"), text).expect("parses");
        crate::inventory::Inventory::from_doc(doc).expect("valid").hosts.remove(0)
    }

    #[test]
    fn the_name_changes_with_the_address_and_with_known_hosts_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kh = dir.path().join("known_hosts");
        std::fs::write(&kh, "10.0.0.1 ssh-ed25519 AAAA1\n").expect("write");
        let ssh = SshSettings { identity_file: None, known_hosts: kh.clone(), connect_timeout_secs: 10, initial_user: "root".into(), persist_secs: 60 };
        let a = master_name(&host("10.0.0.1"), &ssh);
        assert_eq!(a, master_name(&host("10.0.0.1"), &ssh));
        assert_ne!(a, master_name(&host("10.0.0.2"), &ssh));
        std::fs::write(&kh, "10.0.0.1 ssh-ed25519 AAAA2\n").expect("write");
        assert_ne!(a, master_name(&host("10.0.0.1"), &ssh), "a changed host key makes a new master");
    }

    #[test]
    fn an_entry_never_leads_forget_outside_the_directory() {
        let root = tempfile::tempdir().expect("tempdir");
        let d = root.path().join("masters");
        std::fs::create_dir(&d).expect("mkdir");
        for target in [d.join("..").join("master"), d.join(".ssh-connection/../../master"), root.path().join(".ssh-connectionX/master"), PathBuf::from("/master")] {
            let _ = std::fs::remove_file(d.join("evil"));
            std::os::unix::fs::symlink(&target, d.join("evil")).expect("link");
            forget(&d, "evil");
            assert!(root.path().is_dir() && d.is_dir(), "{target:?} made forget remove a directory it does not own");
        }
    }

    #[test]
    fn entries_outside_the_directory_or_dead_are_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::os::unix::fs::symlink("/etc/passwd", d.join("outside")).expect("link");
        assert_eq!(recorded_socket(d, "outside"), None);
        assert!(!d.join("outside").exists() && std::fs::symlink_metadata(d.join("outside")).is_err());
        let master_dir = d.join(".ssh-connectionX");
        std::fs::create_dir(&master_dir).expect("mkdir");
        std::fs::write(master_dir.join("log"), "").expect("write");
        record(d, "gone", &master_dir.join("master")).expect("record");
        assert_eq!(recorded_socket(d, "gone"), None, "no socket: the master ended");
        assert!(!master_dir.exists(), "its directory is removed");
    }
}
