//! Assets built on the controller before a `--dir` release (`release_assets`): in a clean
//! copy of the directory, never in the user's tree, which is then what gets packed. The
//! command is the user's own controller-side code (or `bin/rails assets:precompile`); it
//! runs here with [`Command`], its text one argument of `sh -c`, never pasted into another.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// SECRET_KEY_BASE for the build only: Rails will not boot in production without one, and
/// precompiling needs none of its secrets. Not a secret; never reaches a host.
pub const DUMMY_SECRET_KEY_BASE: &str = "provision-assets-precompile-dummy-secret-key-base-not-used-at-run-time";

/// What `release_assets` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assets {
    /// `bin/rails assets:precompile` when the directory has `bin/rails` and `app/assets`.
    Auto,
    Off,
    /// A sh command, run in the copy.
    Command(String),
}

impl Assets {
    /// From the variable (None: not set, which is `auto`).
    pub fn from_var(v: Option<&str>) -> Assets {
        match v.map(str::trim) {
            None | Some("") | Some("auto") => Assets::Auto,
            Some("off") => Assets::Off,
            Some(_) => Assets::Command(v.unwrap_or_default().to_string()),
        }
    }
}

/// A built copy: pack `dir` instead of the user's directory. Removed when dropped.
pub struct Built {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    /// What ran, for the output.
    pub what: String,
    /// Files under public/assets after the build.
    pub files: usize,
    pub seconds: f64,
}

/// Builds the assets of `src` in a clean copy, or None when there is nothing to build
/// (`off`, or `auto` without bin/rails and app/assets). Err: the command failed, with its
/// output; nothing was sent anywhere.
pub fn build(src: &Path, mode: &Assets, rails_env: &str) -> Result<Option<Built>> {
    let rails = src.join("bin/rails").is_file() && src.join("app/assets").is_dir();
    let what = match mode {
        Assets::Off => return Ok(None),
        Assets::Auto if !rails => return Ok(None),
        Assets::Auto => "bin/rails assets:precompile".to_string(),
        Assets::Command(c) => c.clone(),
    };
    let t = Instant::now();
    let tmp = tempfile::Builder::new().prefix("provision-assets.").tempdir().context("cannot make a temp directory for the assets build")?;
    let dir = tmp.path().join("app");
    std::fs::create_dir(&dir).context("cannot make the build copy")?;
    copy_tree(src, &dir)?;
    let mut cmd = match mode {
        Assets::Command(c) => {
            let mut cmd = Command::new("sh");
            cmd.arg("-c").arg(c);
            cmd
        }
        _ => {
            let mut cmd = Command::new(dir.join("bin/rails"));
            cmd.arg("assets:precompile");
            cmd
        }
    };
    let out = cmd
        .current_dir(&dir)
        .env("RAILS_ENV", rails_env)
        .env("SECRET_KEY_BASE", DUMMY_SECRET_KEY_BASE)
        .env("SECRET_KEY_BASE_DUMMY", "1")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run `{what}` on the controller"))?;
    if !out.status.success() {
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n  | ");
        bail!(
            "building the assets failed on the controller ({what}, RAILS_ENV={rails_env}, in a copy of {}): {}; no host was touched\n  | {tail}",
            src.display(),
            out.status
        );
    }
    let files = count_files(&dir.join("public/assets"));
    Ok(Some(Built { _tmp: tmp, dir, what, files, seconds: t.elapsed().as_secs_f64() }))
}

/// `src` copied into `dest` as the artifact would pack it: without `.git`, `log` and `tmp`.
fn copy_tree(src: &Path, dest: &Path) -> Result<()> {
    let mut pack = Command::new("tar")
        .arg("-C")
        .arg(src)
        .args(["--exclude=./.git", "--exclude=./log", "--exclude=./tmp", "-cf", "-", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run tar on the controller")?;
    let Some(stdout) = pack.stdout.take() else { bail!("tar gave no output to copy {}", src.display()) };
    let unpack = Command::new("tar").arg("-C").arg(dest).args(["-xf", "-"]).stdin(stdout).output().context("cannot run tar on the controller")?;
    let packed = pack.wait().context("tar")?;
    if !packed.success() || !unpack.status.success() {
        bail!("copying {} for the assets build failed: {}", src.display(), String::from_utf8_lossy(&unpack.stderr).trim());
    }
    Ok(())
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(Assets::from_var(None), Assets::Auto);
        assert_eq!(Assets::from_var(Some("auto")), Assets::Auto);
        assert_eq!(Assets::from_var(Some(" off ")), Assets::Off);
        assert_eq!(Assets::from_var(Some("npm run build")), Assets::Command("npm run build".into()));
    }

    /// The command runs in a copy (the user's tree is not written), with RAILS_ENV and the
    /// dummy key, and its text is one `sh -c` argument: quotes and `$()` in paths stay data.
    #[test]
    fn command_runs_in_a_clean_copy() {
        let tmp = tempfile::tempdir().expect("tmp");
        let src = tmp.path().join("it's $(touch PWNED) \"x\"");
        std::fs::create_dir_all(src.join("log")).expect("mkdir");
        std::fs::write(src.join("log/big.log"), "x").expect("write");
        std::fs::write(src.join("a.txt"), "a").expect("write");
        let mode = Assets::Command("mkdir -p public/assets && printf '%s %s' \"$RAILS_ENV\" \"${SECRET_KEY_BASE%%-*}\" > public/assets/env.txt && test ! -e log".into());
        let built = build(&src, &mode, "staging").expect("build").expect("built");
        assert_eq!(std::fs::read_to_string(built.dir.join("public/assets/env.txt")).expect("read"), "staging provision");
        assert!(built.dir.join("a.txt").is_file());
        assert_eq!(built.files, 1);
        assert!(!src.join("public").exists(), "the user's tree was written");
        assert!(!tmp.path().join("PWNED").exists() && !Path::new("PWNED").exists());
        let copy = built.dir.clone();
        drop(built);
        assert!(!copy.exists(), "the copy is removed");
    }

    #[test]
    fn failure_shows_the_output_and_auto_needs_rails() {
        let tmp = tempfile::tempdir().expect("tmp");
        let e = build(tmp.path(), &Assets::Command("echo compiling; echo 'Sprockets::FileNotFound' >&2; exit 3".into()), "production").err().expect("fails");
        let e = format!("{e:#}");
        assert!(e.contains("compiling") && e.contains("Sprockets::FileNotFound") && e.contains("no host was touched"), "{e}");
        assert!(build(tmp.path(), &Assets::Auto, "production").expect("auto").is_none());
        assert!(build(tmp.path(), &Assets::Off, "production").expect("off").is_none());
    }
}
