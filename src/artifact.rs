//! The release's artifact: a directory packed here (the same tree gives the same bytes) or
//! a .tar.gz made elsewhere, with its sha256 and revision.

use crate::release_scripts::Artifact;
use crate::shell::sha256_hex;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Where the code comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A directory, packed here (assets already built in it).
    Dir(PathBuf),
    /// A .tar.gz made elsewhere.
    Artifact(PathBuf),
}

/// Packs `--dir` (sorted, owner-neutral, `gzip -n`, so the same tree gives the same
/// sha256) or reads `--artifact`.
pub fn artifact(source: &Source, revision: Option<&str>) -> Result<Artifact> {
    let (bytes, git_dir) = match source {
        Source::Artifact(p) => {
            let b = std::fs::read(p).with_context(|| format!("cannot read the artifact {}", p.display()))?;
            if b.len() < 2 || b[0] != 0x1f || b[1] != 0x8b {
                bail!("{} is not a gzip file (the artifact must be a .tar.gz)", p.display());
            }
            (b, None)
        }
        Source::Dir(d) => {
            if !d.is_dir() {
                bail!("--dir {}: not a directory", d.display());
            }
            let out = std::process::Command::new("tar")
                .arg("-C")
                .arg(d)
                .args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--exclude=./.git", "--exclude=./log", "--exclude=./tmp", "-I", "gzip -n", "-cf", "-", "."])
                .output()
                .context("cannot run tar on the controller")?;
            if !out.status.success() {
                bail!("packing {} failed: {}", d.display(), String::from_utf8_lossy(&out.stderr).trim());
            }
            (out.stdout, Some(d.clone()))
        }
    };
    let sha256 = sha256_hex(&bytes);
    let revision = match revision {
        Some(r) => r.to_string(),
        None => git_dir.and_then(|d| dir_revision(&d)).unwrap_or_else(|| sha256[..12].to_string()),
    };
    if revision.chars().any(|c| c.is_control()) || revision.len() > 200 {
        bail!("--revision must be one printable line of at most 200 characters");
    }
    Ok(Artifact { bytes, sha256, revision })
}


/// The directory's `git rev-parse --short HEAD`, if it is a git work tree.
pub fn dir_revision(d: &Path) -> Option<String> {
    let o = std::process::Command::new("git").arg("-C").arg(d).args(["rev-parse", "--short", "HEAD"]).output().ok()?;
    Some(String::from_utf8_lossy(&o.stdout).trim().to_string()).filter(|s| o.status.success() && !s.is_empty())
}
