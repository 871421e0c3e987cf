//! Facts: what a host looks like, as read by the probe. Modules ask for facts in a
//! [`FactRequest`] and read the answers from [`Facts`]; they never talk to the host.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Everything the resources of one host need to know, batched by kind so that the probe
/// makes one call per kind (one `find`, one `sha256sum`, one `dpkg-query`, ...).
#[derive(Debug, Default, Clone)]
pub struct FactRequest {
    /// Paths to `lstat`.
    pub paths: BTreeSet<String>,
    /// Regular files to hash; the value is the hash we want. A file whose hash differs
    /// has its content read too (for the diff), unless it may hold a secret.
    pub hashes: BTreeMap<String, FileWant>,
    /// Packages that should be installed (their apt candidates are looked up when missing).
    pub packages_present: BTreeSet<String>,
    /// Packages that should be absent.
    pub packages_absent: BTreeSet<String>,
    pub units: BTreeSet<String>,
    pub users: BTreeSet<String>,
    pub groups: BTreeSet<String>,
    /// Guard commands (`unless`), by id: only their exit status is read.
    pub checks: Vec<(String, crate::shell::Script)>,
    /// Content validations (`visudo -cf %s`), by id, run on a temp file with the content.
    pub validations: Vec<Validation>,
    /// Whether to read the host's facts for templates ([`crate::host_facts`]).
    pub host_facts: bool,
}

/// What we want a managed file's content to be.
#[derive(Debug, Clone)]
pub struct FileWant {
    pub sha256: String,
    /// Whether the current content may be read for a diff (not for secret-bearing files).
    pub read_content: bool,
}

/// Runs `command` (with `%s` replaced by a temp file holding `content`) during the probe.
#[derive(Debug, Clone)]
pub struct Validation {
    pub id: String,
    pub command: crate::shell::Script,
    pub content: Vec<u8>,
    /// The file and the hash it would have: when the host's file already has it, the
    /// content was validated when it landed, and the check is skipped (no-op probes stay cheap).
    pub unless_current: Option<(String, String)>,
}

impl FactRequest {
    /// Whether a probe for `self` reads everything a probe for `other` would: the same
    /// paths, packages, units, users, groups, guards and validated contents. Wanted hashes
    /// may differ: the probe reports every file's hash, whatever was wanted.
    pub fn reads_all_of(&self, other: &FactRequest) -> bool {
        let same_validations = self.validations.len() == other.validations.len()
            && self.validations.iter().zip(&other.validations).all(|(a, b)| a.id == b.id && a.command == b.command && a.content == b.content);
        self.paths == other.paths
            && self.hashes.keys().eq(other.hashes.keys())
            && self.packages_present == other.packages_present
            && self.packages_absent == other.packages_absent
            && self.units == other.units
            && self.users == other.users
            && self.groups == other.groups
            && self.checks == other.checks
            && same_validations
            && self.host_facts >= other.host_facts
    }
    pub fn path(&mut self, p: &str) {
        self.paths.insert(p.to_string());
    }
    pub fn hash(&mut self, p: &str, sha256: &str, read_content: bool) {
        self.paths.insert(p.to_string());
        self.hashes.insert(p.to_string(), FileWant { sha256: sha256.to_string(), read_content });
    }
    pub fn user(&mut self, u: &str) {
        if !u.is_empty() && !u.chars().all(|c| c.is_ascii_digit()) {
            self.users.insert(u.to_string());
        }
    }
    pub fn group(&mut self, g: &str) {
        if !g.is_empty() && !g.chars().all(|c| c.is_ascii_digit()) {
            self.groups.insert(g.to_string());
        }
    }
}

/// The type of a filesystem object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    File,
    Directory,
    Link,
    Other,
}

impl PathKind {
    pub fn name(self) -> &'static str {
        match self {
            PathKind::File => "file",
            PathKind::Directory => "directory",
            PathKind::Link => "link",
            PathKind::Other => "special file",
        }
    }
}

/// An `lstat` of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathFact {
    pub kind: PathKind,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub size: u64,
    pub link_target: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageFact {
    pub installed: bool,
    pub version: String,
}

/// `systemctl show` of one unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitFact {
    pub load_state: String,
    pub unit_file_state: String,
    pub active_state: String,
    pub fragment_path: String,
}

impl UnitFact {
    pub fn exists(&self) -> bool {
        self.load_state == "loaded" || self.load_state == "masked"
    }
    pub fn enabled(&self) -> bool {
        matches!(self.unit_file_state.as_str(), "enabled" | "enabled-runtime" | "alias")
    }
    /// Units whose enablement `systemctl enable|disable` cannot change (no [Install] section).
    pub fn enablement_fixed(&self) -> bool {
        matches!(self.unit_file_state.as_str(), "static" | "generated" | "transient" | "indirect")
    }
    pub fn active(&self) -> bool {
        matches!(self.active_state.as_str(), "active" | "reloading" | "activating")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The apt cache: whether it is fresh, and which missing packages it knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AptFact {
    pub lists_fresh: bool,
    /// Missing packages that apt has a candidate for; only filled when some are missing.
    pub known: BTreeSet<String>,
}

/// The result of a validation run during the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationResult {
    pub status: i32,
    pub output: String,
}

/// Everything the probe read from one host.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub paths: HashMap<String, PathFact>,
    pub hashes: HashMap<String, String>,
    pub contents: HashMap<String, Vec<u8>>,
    pub packages: HashMap<String, PackageFact>,
    pub apt: AptFact,
    pub units: HashMap<String, UnitFact>,
    pub users: HashMap<String, PasswdEntry>,
    pub groups: HashMap<String, GroupEntry>,
    pub checks: HashMap<String, i32>,
    pub validations: HashMap<String, ValidationResult>,
    /// Handlers notified by a change that landed in an earlier run that died before running them.
    pub pending_handlers: Vec<String>,
    /// A run in progress on the host, as `pid@host since` written by its lock, if any.
    pub lock_holder: Option<String>,
    /// A killed run's lock or temp directory is still on the host.
    pub stale_leftovers: bool,
    /// The facts templates see, when they were asked for.
    pub host: Option<crate::host_facts::HostFacts>,
}

impl Facts {
    pub fn package_installed(&self, name: &str) -> bool {
        self.packages.get(name).is_some_and(|p| p.installed)
    }
    pub fn user_exists(&self, name: &str) -> bool {
        name == "root" || name.chars().all(|c| c.is_ascii_digit()) || self.users.contains_key(name)
    }
    pub fn group_exists(&self, name: &str) -> bool {
        name == "root" || name.chars().all(|c| c.is_ascii_digit()) || self.groups.contains_key(name)
    }
}
