//! The plan: a value. For each host, the ordered list of changes that an apply will make,
//! each with its before/after details and diff. `--check` prints it and stops; apply
//! executes exactly it. Only `steps` drive the apply; everything else is for people.

use crate::shell::Script;
use serde::Serialize;

/// What a change does to its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
    Run,
}

impl Action {
    /// The sign shown before the change: `+ ~ - *`.
    pub fn sign(self) -> char {
        match self {
            Action::Create => '+',
            Action::Update => '~',
            Action::Delete => '-',
            Action::Run => '*',
        }
    }
}

/// What a change makes available to later changes of the same host, so that a later
/// resource can state what it assumes instead of failing in `--check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provides {
    Package(String),
    User(String),
    Group(String),
    Path(String),
}

/// One unit of remote work. Steps run in order inside one shell; any failure fails the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A POSIX sh snippet.
    Shell(Script),
    /// Packages to install. The installs of a host are merged into the first
    /// `apt-get install` their role's order allows (apply::apt_runs); `update` asks for `apt-get update` first.
    AptInstall { packages: Vec<String>, update: bool },
    AptRemove(Vec<String>),
    /// `systemctl daemon-reload`, once, if a unit file was written earlier in this run.
    DaemonReloadIfNeeded,
}

/// One change to one resource.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub role: String,
    /// The module kind: file, package, unit, sudoers, user, group, command, handler.
    pub kind: String,
    /// What the change is about: a path, a package name, a unit, a user.
    pub target: String,
    pub action: Action,
    /// Attribute changes, such as `mode 0600 → 0644` or `enabled: no → yes`.
    pub details: Vec<String>,
    /// A unified diff of the content, or `(secret)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// What this change assumes about an earlier change (in `--check`, that change has not happened yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assumption: Option<String>,
    /// Handlers (of `role`) this change notifies.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
    #[serde(skip)]
    pub steps: Vec<Step>,
    #[serde(skip)]
    pub provides: Vec<Provides>,
    /// A file that decides who can log in or become root (sudoers, authorized_keys, sshd
    /// config). A change to one is backed up, and reverted unless a fresh login plus
    /// `sudo -n true` works after the apply (the lockout canary).
    #[serde(skip)]
    pub login_file: Option<String>,
    /// For a login file that is in force only once a command loads it (a firewall's rule
    /// set): that command, run again after the file is put back.
    #[serde(skip)]
    pub login_reload: Option<Script>,
    /// For a handler: its journal key, removed from the host's journal once it ran.
    #[serde(skip)]
    pub clears_journal: Option<String>,
}

impl Change {
    pub fn new(kind: &str, target: impl Into<String>, action: Action) -> Change {
        Change {
            role: String::new(),
            kind: kind.to_string(),
            target: target.into(),
            action,
            details: Vec::new(),
            diff: None,
            assumption: None,
            notify: Vec::new(),
            steps: Vec::new(),
            provides: Vec::new(),
            login_file: None,
            login_reload: None,
            clears_journal: None,
        }
    }

    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.details.push(d.into());
        self
    }

    pub fn step(mut self, s: Step) -> Self {
        self.steps.push(s);
        self
    }

    pub fn shell(self, script: Script) -> Self {
        self.step(Step::Shell(script))
    }

    pub fn provides(mut self, p: Provides) -> Self {
        self.provides.push(p);
        self
    }

    /// The stable identity of the change: `kind target`.
    pub fn id(&self) -> String {
        format!("{} {}", self.kind, self.target)
    }
}

/// What the changes planned so far on a host will provide; resources consult it to turn
/// "not there yet" into a stated assumption rather than an error.
#[derive(Debug, Default)]
pub struct PlanContext<'a> {
    pub earlier: &'a [Change],
}

impl PlanContext<'_> {
    fn find(&self, want: impl Fn(&Provides) -> bool) -> Option<&Change> {
        self.earlier.iter().find(|c| c.provides.iter().any(&want))
    }

    /// The earlier change that creates `user`, if any.
    pub fn creates_user(&self, user: &str) -> Option<&Change> {
        self.find(|p| matches!(p, Provides::User(u) if u == user))
    }

    pub fn creates_group(&self, group: &str) -> Option<&Change> {
        self.find(|p| matches!(p, Provides::Group(g) if g == group) || matches!(p, Provides::User(u) if u == group))
    }

    pub fn creates_path(&self, path: &str) -> Option<&Change> {
        self.find(|p| matches!(p, Provides::Path(x) if x == path))
    }

    /// The packages that earlier changes install.
    pub fn installed_packages(&self) -> Vec<&str> {
        self.earlier
            .iter()
            .flat_map(|c| c.provides.iter())
            .filter_map(|p| match p {
                Provides::Package(n) => Some(n.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// The plan for one host.
#[derive(Debug, Clone, Serialize, Default)]
pub struct HostPlan {
    pub host: String,
    pub changes: Vec<Change>,
    /// Resources already in the wanted state.
    pub unchanged: usize,
}
