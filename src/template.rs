//! Templates: minijinja set up the way Ansible users expect (strict undefined, no
//! auto-escaping, `trim_blocks`, trailing newline kept) plus the filters roles need.
//!
//! Every error becomes a [`Diagnostic`] naming the template file, the line and the
//! expression that failed, before any host is touched.

use crate::error::{Diagnostic, Location};
use minijinja::value::Value as JValue;
use minijinja::{syntax::SyntaxConfig, AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};
use std::path::{Path, PathBuf};

/// A template environment for one role: `{% include %}` resolves in its `templates/` dir.
pub struct Templates {
    env: Environment<'static>,
    dir: PathBuf,
}

impl Templates {
    pub fn new(templates_dir: &Path) -> Templates {
        let mut env = Environment::new();
        env.set_loader(minijinja::path_loader(templates_dir));
        env.set_auto_reload(false);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Config files are not HTML: escaping `*.yml.j2` or `*.html.j2` would corrupt them.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        if let Ok(syntax) = SyntaxConfig::builder().trim_blocks(true).keep_trailing_newline(true).build() {
            env.set_syntax(syntax);
        }
        add_filters(&mut env);
        Templates { env, dir: templates_dir.to_path_buf() }
    }

    /// Renders `templates/NAME` with `ctx`.
    pub fn render_file(&self, name: &str, ctx: &JValue) -> Result<String, Diagnostic> {
        let path = self.dir.join(name);
        let template = self.env.get_template(name).map_err(|e| {
            if e.kind() == ErrorKind::TemplateNotFound && !path.exists() {
                Diagnostic::new(format!("template `{name}` not found"))
                    .at(Location::file(&path))
                    .help(format!("create `{}` or fix the name", path.display()))
            } else {
                to_diagnostic(&e, &path, 0)
            }
        })?;
        template.render(ctx.clone()).map_err(|e| to_diagnostic(&e, &path, 0))
    }

    /// Renders an inline template, such as a task argument. `origin` is where the string
    /// is written (file and line), so errors point there.
    pub fn render_str(&self, source: &str, ctx: &JValue, origin: &Location) -> Result<String, Diagnostic> {
        if !source.contains("{{") && !source.contains("{%") {
            return Ok(source.to_string());
        }
        let name = origin.file.display().to_string();
        self.env
            .render_named_str(&name, source, ctx.clone())
            .map_err(|e| to_diagnostic(&e, &origin.file, origin.line.saturating_sub(1)))
    }
}

impl Templates {
    /// The top-level variable names an inline template refers to (none when it is not a
    /// template or does not parse; rendering reports the parse error).
    pub fn referenced(&self, source: &str) -> Vec<String> {
        if !source.contains("{{") && !source.contains("{%") {
            return Vec::new();
        }
        match self.env.template_from_str(source) {
            Ok(t) => t.undeclared_variables(false).into_iter().collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// Converts a minijinja error into a diagnostic at `file`, shifting lines by `line_offset`
/// (for inline templates inside a YAML file).
fn to_diagnostic(e: &Error, file: &Path, line_offset: usize) -> Diagnostic {
    let line = e.line().unwrap_or(1) + line_offset;
    let expr = match (e.template_source(), e.range()) {
        (Some(src), Some(r)) => src.get(r).map(str::to_string),
        _ => None,
    };
    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
    let (message, help) = match e.kind() {
        ErrorKind::UndefinedError => (
            match &expr {
                Some(x) => format!("undefined variable in `{x}`{detail}"),
                None => format!("undefined variable{detail}"),
            },
            "define it in the role's defaults.yml, the inventory's vars or with -e, or use `| default(...)`",
        ),
        ErrorKind::SyntaxError => (format!("template syntax error{detail}"), "fix the template syntax on this line"),
        _ => (
            match &expr {
                Some(x) => format!("template error in `{x}`: {}{detail}", e.kind()),
                None => format!("template error: {}{detail}", e.kind()),
            },
            "check the expression on this line",
        ),
    };
    Diagnostic::new(message).at(Location::new(file, line, 1)).help(help)
}

fn add_filters(env: &mut Environment<'static>) {
    env.add_filter("to_json", |v: JValue| -> Result<String, Error> {
        serde_json::to_string(&v).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
    });
    env.add_filter("to_yaml", |v: JValue| -> Result<String, Error> {
        serde_yaml::to_string(&v).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
    });
    env.add_filter("quote", |v: String| -> Result<String, Error> {
        shlex::try_quote(&v)
            .map(|q| q.into_owned())
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
    });
    // minijinja's built-in `bool` makes the strings "no" and "false" true; Ansible's does not.
    env.add_filter("bool", |v: JValue| -> bool {
        match v.as_str() {
            Some(s) => matches!(s.to_ascii_lowercase().as_str(), "yes" | "on" | "true" | "1" | "y"),
            None => v.is_true(),
        }
    });
    env.add_filter("basename", |v: String| v.rsplit('/').next().unwrap_or_default().to_string());
    env.add_filter("dirname", |v: String| match v.rfind('/') {
        Some(0) => "/".to_string(),
        Some(i) => v[..i].to_string(),
        None => String::new(),
    });
    env.add_filter("mandatory", |v: JValue| -> Result<JValue, Error> {
        if v.is_undefined() || v.is_none() {
            Err(Error::new(ErrorKind::UndefinedError, "a mandatory variable is not set"))
        } else {
            Ok(v)
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn strict_undefined_names_the_expression() {
        let t = Templates::new(Path::new("/nonexistent"));
        let err = t
            .render_str("a\n{{ nope }}\n", &context! {}, &Location::new("roles/x/tasks.yml", 10, 3))
            .unwrap_err();
        assert!(err.message.contains("nope"), "{err}");
        assert_eq!(err.location.unwrap().line, 11);
    }

    #[test]
    fn no_auto_escape_and_ansible_bool() {
        let t = Templates::new(Path::new("/nonexistent"));
        let out = t
            .render_str("{{ x }} {{ 'no' | bool }} {{ y | quote }}", &context! { x => "<a & \"b\">", y => "it's" }, &Location::file("t"))
            .unwrap();
        assert_eq!(out, "<a & \"b\"> False \"it's\"");
    }
}
