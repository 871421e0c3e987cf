//! Modules: what a task can ask for. A module turns a task's arguments into resources;
//! a resource asks for facts, then compares them with what it wants and returns at most
//! one [`Change`]. Neither touches the host: the probe reads, the apply writes.
//!
//! A new module is one file implementing [`Module`] and [`Resource`], plus one line in
//! [`MODULES`].

use crate::error::{Diagnostic, Location};
use crate::facts::{FactRequest, Facts};
use crate::plan::{Change, PlanContext};
use crate::template::Templates;
use crate::secrets::Secrets;
use crate::yaml::{Doc, YPath};
use minijinja::value::Value as JValue;
use serde_yaml::Value;
use std::fmt;
use std::path::PathBuf;

pub mod assert;
pub mod command;
pub mod file;
pub mod package;
pub mod sudoers;
pub mod template;
pub mod unit;
pub mod user;

/// Every module, by the key that selects it in a task.
pub static MODULES: &[&dyn Module] = &[
    &file::FileModule,
    &template::TemplateModule,
    &package::PackageModule,
    &unit::UnitModule,
    &sudoers::SudoersModule,
    &user::UserModule,
    &user::GroupModule,
    &command::CommandModule,
    &assert::AssertModule,
];

/// Looks a module up by its task key.
pub fn find(name: &str) -> Option<&'static dyn Module> {
    MODULES.iter().copied().find(|m| m.name() == name)
}

/// A kind of task.
pub trait Module: Sync {
    /// The task key that selects this module, such as `file`.
    fn name(&self) -> &'static str;
    /// The arguments that are code (a script, a check, SQL): values printed into them are
    /// quoted for that language when they are rendered, never pasted.
    fn code_args(&self) -> &'static [(&'static str, crate::template::CodeKind)] {
        &[]
    }
    /// Turns rendered arguments into resources. Errors name the task's file and line.
    fn lower(&self, args: &Args, cx: &LowerCx) -> Result<Vec<Box<dyn Resource>>, Diagnostic>;
}

/// One thing on a host that a task manages.
pub trait Resource: Send + Sync + fmt::Debug {
    /// The module kind shown in the plan (`file`, `package`, ...).
    fn kind(&self) -> &'static str;
    /// What it manages: a path, a name.
    fn target(&self) -> String;
    /// Asks for the facts `plan` needs.
    fn probe(&self, req: &mut FactRequest);
    /// Compares the facts with what is wanted. `None` means already in the wanted state.
    /// An `Err` is a problem found before any change, such as a rejected sudoers rule.
    fn plan(&self, facts: &Facts, cx: &PlanContext) -> Result<Option<Change>, String>;
    /// For handlers: the change to make when notified, whatever the facts say.
    fn plan_as_handler(&self, facts: &Facts, cx: &PlanContext) -> Result<Option<Change>, String> {
        self.plan(facts, cx)
    }
}

/// What lowering a task may use: the role's files and templates, the host's variables.
pub struct LowerCx<'a> {
    pub role: &'a str,
    pub role_dir: PathBuf,
    pub templates: &'a Templates,
    pub vars: &'a JValue,
    pub secrets: &'a Secrets,
    /// The task's location, for errors.
    pub location: Location,
    /// The task's `name`, if it has one.
    pub task_name: Option<String>,
    /// Whether the task is a handler (handlers may run unguarded commands).
    pub is_handler: bool,
}

/// A task's rendered arguments, with where they were written for error messages.
pub struct Args<'a> {
    pub doc: &'a Doc,
    pub path: YPath,
    pub value: Value,
}

impl<'a> Args<'a> {
    /// A reader that reports unknown keys with a "did you mean".
    pub fn reader(&'a self, module: &str) -> Result<crate::yaml::MapReader<'a>, Diagnostic> {
        crate::yaml::MapReader::new(self.doc, self.path.clone(), &self.value, &format!("`{module}` arguments"))
    }

    /// An error about the arguments as a whole: points at the module's key.
    pub fn error(&self, message: impl Into<String>) -> Diagnostic {
        self.doc.error(&self.path, message)
    }

    /// An error about the value of argument `key`: points at that value.
    pub fn value_error(&self, key: &str, message: impl Into<String>) -> Diagnostic {
        self.doc.value_error(&crate::yaml::key(&self.path, key), message)
    }
}

/// Parses a file mode written as `"0644"`, `0644` (YAML 1.2 reads that as decimal 644),
/// `"644"` or `0o644`.
pub fn parse_mode(s: &str) -> Option<u32> {
    let digits = s.trim().trim_start_matches("0o");
    if digits.is_empty() || digits.len() > 4 || !digits.chars().all(|c| ('0'..='7').contains(&c)) {
        return None;
    }
    u32::from_str_radix(digits, 8).ok()
}

/// A mode as people write it.
pub fn fmt_mode(m: u32) -> String {
    format!("{m:04o}")
}

/// Reads the optional `mode` argument.
pub fn read_mode(r: &mut crate::yaml::MapReader, args: &Args) -> Result<Option<u32>, Diagnostic> {
    match r.opt_string("mode")? {
        None => Ok(None),
        Some(m) => parse_mode(&m).map(Some).ok_or_else(|| {
            args.doc
                .value_error(&r.path_of("mode"), format!("`mode: {m}` is not an octal file mode"))
                .help("write it quoted, such as `mode: \"0644\"`")
        }),
    }
}

/// Checks that a path is absolute and has nothing the probe cannot carry.
pub fn check_path(p: &str, args: &Args, key: &str) -> Result<(), Diagnostic> {
    if !p.starts_with('/') {
        return Err(args.value_error(key, format!("`{key}: {p}` must be an absolute path")).help("start it with `/`"));
    }
    if p.chars().any(|c| c.is_control() || c == '\\') {
        return Err(args
            .value_error(key, format!("`{key}: {}` contains a control character (newline, tab, escape) or a backslash, which are not supported in paths", crate::terminal::printable(p)))
            .help("name the path with printable characters only"));
    }
    if p.split('/').any(|c| c == ".." || c == ".") || p.contains("//") {
        return Err(args
            .value_error(key, format!("`{key}: {p}` has a `.`, `..` or empty component"))
            .help("write the path in its plain form, such as `/etc/app/app.conf`"));
    }
    Ok(())
}

/// Checks that `src` names a file inside the role's `dir` (`files` or `templates`): an
/// absolute path, a `..` or a link out of the role would read the controller's own files.
pub fn check_role_relative(src: &str, args: &Args, key: &str, dir: &str, cx: &LowerCx) -> Result<(), Diagnostic> {
    let base = cx.role_dir.join(dir);
    let escapes = src.starts_with('/') || src.split(['/', '\\']).any(|c| c == "..") || resolves_outside(&base, src);
    if escapes {
        return Err(args
            .value_error(key, format!("`{key}: {}` is outside the role's {dir}/ directory", crate::terminal::printable(src)))
            .help(format!("put the file in roles/{}/{dir}/ and name it relative to that directory", cx.role)));
    }
    Ok(())
}

/// Whether `base/src`, its links resolved, lies outside `base`. Remembered per path: every
/// host lowers the same tasks, and resolving costs a system call per path component.
fn resolves_outside(base: &std::path::Path, src: &str) -> bool {
    use std::collections::HashMap;
    use std::path::PathBuf;
    static SEEN: std::sync::Mutex<Option<HashMap<PathBuf, bool>>> = std::sync::Mutex::new(None);
    let path = base.join(src);
    if let Some(known) = SEEN.lock().ok().and_then(|m| m.as_ref().and_then(|m| m.get(&path).copied())) {
        return known;
    }
    let outside = match (path.canonicalize(), base.canonicalize()) {
        (Ok(file), Ok(base)) => !file.starts_with(base),
        _ => false,
    };
    if let Ok(mut m) = SEEN.lock() {
        m.get_or_insert_with(HashMap::new).insert(path, outside);
    }
    outside
}

/// A unified diff of two texts, or a note when either is not text.
pub fn text_diff(path: &str, before: &[u8], after: &[u8]) -> String {
    match (std::str::from_utf8(before), std::str::from_utf8(after)) {
        (Ok(b), Ok(a)) => similar::TextDiff::from_lines(b, a)
            .unified_diff()
            .context_radius(3)
            .header(&format!("{path} (before)"), &format!("{path} (after)"))
            .to_string(),
        _ => format!("(binary content: {} bytes → {} bytes)\n", before.len(), after.len()),
    }
}
