//! `provision init DIR`: a new project a team can grow, from the binary alone: the shipped
//! roles (embedded at build time, so no checkout of provision's repository is needed), a
//! staging and a production inventory with the stack's shape and placeholder addresses,
//! and a .gitignore. The project is written beside DIR and renamed into place, so a failure
//! leaves nothing half-written, and an existing non-empty DIR is never touched.

use crate::report::VerbReport;
use anyhow::{anyhow, bail, Context, Result};
use include_dir::{include_dir, Dir};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

static ROLES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/roles");
const STAGING: &str = include_str!("../../inventories/staging.yml");
const PRODUCTION: &str = include_str!("../../inventories/production.yml");
/// The name the shipped inventories use for the app.
const SHIPPED_APP: &str = "flipper";

const GITIGNORE: &str = "# SSH keys and known_hosts of this project's servers (see the inventories' ssh: section).
/.provision/
# Built release artifacts.
*.tar.gz
";

pub struct InitOptions {
    pub dir: PathBuf,
    /// The app's name: directories, the database, the secrets' environment variables.
    pub app: String,
}

/// What `init` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    pub dir: String,
    pub app: String,
    pub files: usize,
}

impl VerbReport for InitReport {
    fn ok(&self) -> bool {
        true
    }
    fn closing(&self) -> Vec<(bool, String)> {
        let env = self.app.to_uppercase();
        let lines = [
            format!("wrote {} files to {}: roles/, inventories/staging.yml, inventories/production.yml, .gitignore", self.files, self.dir),
            "next:".to_string(),
            format!("  cd {}", self.dir),
            "  edit inventories/staging.yml: the hosts' addresses (placeholders now), admin_keys and deploy_keys".to_string(),
            format!("  export {env}_SECRET_KEY_BASE=... {env}_MYSQL_PASSWORD=... {env}_REDIS_PASSWORD=...     # secrets come from the environment"),
            "  provision validate inventories/staging.yml       # checks everything without connecting".to_string(),
            "  provision bootstrap inventories/staging.yml      # fresh servers: root with a key -> ready".to_string(),
            "  provision inventories/staging.yml --check        # what would change, with diffs".to_string(),
        ];
        lines.into_iter().map(|l| (false, l)).collect()
    }
}

/// Writes the project. Err, with nothing written, when DIR exists and is not empty or the
/// app's name is not a plain name.
pub fn init(opts: &InitOptions) -> Result<InitReport> {
    let app = &opts.app;
    if !(app.chars().next().is_some_and(|c| c.is_ascii_lowercase()) && app.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')) {
        bail!("`--app {app}`: the app's name must be lowercase letters, digits and `_`, starting with a letter (it names directories, the database and environment variables)");
    }
    // Written bare into YAML, these would be read as null or a boolean, not as a name.
    if ["null", "true", "false", "yes", "no", "on", "off", "y", "n"].contains(&app.as_str()) {
        bail!("`--app {app}`: YAML reads `{app}` as a null or a boolean, not a name; choose another name");
    }
    let dir = &opts.dir;
    if dir.exists() && (!dir.is_dir() || std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true)) {
        bail!("`{}` exists and is not an empty directory: nothing was written; choose a new directory", dir.display());
    }
    let name = dir.file_name().ok_or_else(|| anyhow!("`{}` is not a directory name", dir.display()))?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("cannot create `{}`", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{}.init-", name.to_string_lossy()))
        .tempdir_in(&parent)
        .with_context(|| format!("cannot write in `{}`", parent.display()))?;
    let roles = shipped_roles();
    for (rel, bytes) in &roles {
        write(&staging.path().join("roles").join(rel), bytes)?;
    }
    // What was shipped, so `provision roles update` can tell a user's edit from an old version.
    write(&staging.path().join("roles").join(super::roles_update::RECORD), super::roles_update::record_text(&roles).as_bytes())?;
    let mut files = roles.len() + 1;
    let env = app.to_uppercase();
    for (rel, text) in [("inventories/staging.yml", STAGING), ("inventories/production.yml", PRODUCTION), (".gitignore", GITIGNORE)] {
        let text = text.replace(&SHIPPED_APP.to_uppercase(), &env).replace(SHIPPED_APP, app);
        write(&staging.path().join(rel), text.as_bytes())?;
        files += 1;
    }
    if dir.exists() {
        std::fs::remove_dir(dir).with_context(|| format!("cannot replace the empty directory `{}`", dir.display()))?;
    }
    // Renamed while the temp directory still owns it: a failed rename removes it again.
    std::fs::rename(staging.path(), dir).with_context(|| format!("cannot move the new project to `{}`", dir.display()))?;
    let _ = staging.keep();
    Ok(InitReport { dir: dir.display().to_string(), app: app.clone(), files })
}

/// Every role file this binary ships, by its path under roles/.
pub(super) fn shipped_roles() -> BTreeMap<String, Vec<u8>> {
    fn walk(d: &Dir<'_>, out: &mut BTreeMap<String, Vec<u8>>) {
        for f in d.files() {
            out.insert(f.path().to_string_lossy().into_owned(), f.contents().to_vec());
        }
        for sub in d.dirs() {
            walk(sub, out);
        }
    }
    let mut out = BTreeMap::new();
    walk(&ROLES, &mut out);
    out
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).with_context(|| format!("cannot create `{}`", p.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write `{}`", path.display()))
}
