//! Templates: minijinja set up the way Ansible users expect (strict undefined, no
//! auto-escaping, `trim_blocks`, trailing newline kept) plus the filters roles need.
//!
//! Every error becomes a [`Diagnostic`] naming the template file, the line and the
//! expression that failed, before any host is touched.

use crate::error::{Diagnostic, Location, Span};
use minijinja::value::Value as JValue;
use minijinja::{syntax::SyntaxConfig, AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};
use std::path::{Path, PathBuf};

/// A template environment for one role: `{% include %}` resolves in its `templates/` dir.
pub struct Templates {
    env: Environment<'static>,
    dir: PathBuf,
    /// Inline templates (task arguments, `when:`, variables) by the name they are loaded
    /// under: every host renders the same strings, so each is compiled once and the
    /// environment keeps it (compiling them per host was a fifth of loading time).
    inline: InlineSources,
}

type InlineSources = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>;

impl Templates {
    pub fn new(templates_dir: &Path) -> Templates {
        let mut env = Environment::new();
        let inline = InlineSources::default();
        let files = minijinja::path_loader(templates_dir);
        let sources = inline.clone();
        env.set_loader(move |name| {
            if name.starts_with(INLINE_PREFIX) {
                return Ok(sources.lock().ok().and_then(|m| m.get(name).cloned()).map(minijinja::TemplateSource::new));
            }
            files(name)
        });
        env.set_auto_reload(false);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Keep the source and the failing span in errors in every build (minijinja turns this
        // off outside debug builds): users of the release build get the expression and its column.
        env.set_debug(true);
        // Config files are not HTML: escaping `*.yml.j2` or `*.html.j2` would corrupt them.
        // Code (a `command`'s `run`, an `unless`, a `validate`, SQL) is rendered under a name
        // ending in its kind, and every value printed into it is quoted for that language.
        env.set_auto_escape_callback(|name| match CodeKind::of_template_name(name) {
            Some(kind) => AutoEscape::Custom(kind.escape_name().into()),
            None => AutoEscape::None,
        });
        env.set_formatter(format_value);
        if let Ok(syntax) = SyntaxConfig::builder().trim_blocks(true).keep_trailing_newline(true).build() {
            env.set_syntax(syntax);
        }
        add_filters(&mut env);
        crate::template_topology::add(&mut env);
        crate::grammar::add_filters(&mut env);
        Templates { env, dir: templates_dir.to_path_buf(), inline }
    }

    /// `source` compiled once, under a name ending in `suffix` (a code kind's, or none).
    /// Names come from a hash of the source; a (most unlikely) collision gets the next free
    /// name, so a name never stands for two sources.
    fn inline_template(&self, source: &str, suffix: &str) -> Result<minijinja::Template<'_, '_>, Error> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        source.hash(&mut h);
        let base = format!("{INLINE_PREFIX}{:016x}", h.finish());
        let name = {
            let mut sources = self.inline.lock().unwrap_or_else(|e| e.into_inner());
            let mut n = 0usize;
            loop {
                let name = format!("{base}-{n}{suffix}");
                match sources.get(&name) {
                    Some(s) if s == source => break name,
                    Some(_) => n += 1,
                    None => {
                        sources.insert(name.clone(), source.to_string());
                        break name;
                    }
                }
            }
        };
        self.env.get_template(&name)
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
                to_diagnostic(&e, file_position(&e, &path))
            }
        })?;
        template.render(ctx.clone()).map_err(|e| to_diagnostic(&e, file_position(&e, &path)))
    }

    /// Renders an inline template, such as a task argument. `origin` is where the string
    /// is written, so errors point at the failing expression inside it.
    pub fn render_str(&self, source: &str, ctx: &JValue, origin: &dyn Origin) -> Result<String, Diagnostic> {
        if !source.contains("{{") && !source.contains("{%") {
            return Ok(source.to_string());
        }
        self.inline_template(source, "")
            .and_then(|t| t.render(ctx.clone()))
            .map_err(|e| self.inline_error(&e, source, &Written::whole(source), origin))
    }

    /// Evaluates an expression written as `{{ expr }}` or bare (a `when`, a `loop`, an
    /// assert's `that`) to its value: a list or a mapping comes back whole.
    pub fn evaluate(&self, written: &str, ctx: &JValue, origin: &dyn Origin) -> Result<serde_json::Value, Diagnostic> {
        let w = Written::expression(written);
        let expr = w.expr;
        // `tojson` would turn an undefined value into null; printing it first raises the
        // strict-undefined error that names it. The parentheses keep `a or b | tojson` whole.
        let compiled = format!("{{% if ({expr}) is undefined %}}{{{{ {expr} }}}}{{% endif %}}{{{{ ({expr}) | tojson }}}}");
        let json = self
            .inline_template(&compiled, "")
            .and_then(|t| t.render(ctx.clone()))
            .map_err(|e| self.inline_error(&e, &compiled, &w, origin))?;
        serde_json::from_str(&json).map_err(|e| Diagnostic::new(format!("cannot evaluate `{expr}`: {e}")).at(origin.span().start))
    }

    /// The diagnostic of `e`, raised by `compiled`, an inline template made from `w`.
    fn inline_error(&self, e: &Error, compiled: &str, w: &Written, origin: &dyn Origin) -> Diagnostic {
        // A syntax error in an expression would speak of the wrapping around it (an
        // "unexpected `)`" the user never wrote): the expression alone says what is wrong.
        if e.kind() == ErrorKind::SyntaxError && compiled != w.expr {
            if let Err(bare) = self.env.compile_expression(w.expr) {
                return to_diagnostic(&bare, inline_position(&bare, w.expr, w, &origin.span()));
            }
        }
        to_diagnostic(e, inline_position(e, compiled, w, &origin.span()))
    }
}

/// Where an inline template is written, for its errors. Finding a YAML value's position
/// parses its file again, so it is asked for only when rendering fails.
pub trait Origin {
    fn span(&self) -> Span;
}

impl Origin for Location {
    fn span(&self) -> Span {
        Span::at(self.clone())
    }
}

impl Origin for Span {
    fn span(&self) -> Span {
        self.clone()
    }
}

impl<F: Fn() -> Span> Origin for F {
    fn span(&self) -> Span {
        self()
    }
}

/// An inline template as the user wrote it: `text`, the YAML scalar, of which `expr` (from
/// byte `at`) is what was compiled, alone or inside a wrapping that may repeat it.
struct Written<'a> {
    text: &'a str,
    at: usize,
    expr: &'a str,
}

impl<'a> Written<'a> {
    /// A template compiled as written.
    fn whole(text: &'a str) -> Self {
        Written { text, at: 0, expr: text }
    }

    /// An expression written as `{{ expr }}` or bare: the expression inside.
    fn expression(text: &'a str) -> Self {
        let (at, expr) = expression_of(text);
        Written { text, at, expr }
    }
}

/// The expression of `{{ expr }}` (or of a bare expression), trimmed, and where it starts.
pub fn expression_of(text: &str) -> (usize, &str) {
    let t = text.trim_start();
    let mut at = text.len() - t.len();
    let t = t.trim_end();
    let inner = match t.strip_prefix("{{").and_then(|s| s.strip_suffix("}}")) {
        Some(inner) => {
            at += 2;
            inner
        }
        None => t,
    };
    let expr = inner.trim();
    (at + (inner.len() - inner.trim_start().len()), expr)
}

/// The names inline templates are loaded under start with this; no template file's can.
const INLINE_PREFIX: &str = "#inline:";

/// A language whose text is code: values printed into it are quoted, never pasted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeKind {
    /// POSIX sh: each value becomes one quoted word.
    Shell,
    /// MariaDB SQL: each value becomes a string literal (numbers stay numbers).
    Sql,
}

impl CodeKind {
    fn suffix(self) -> &'static str {
        match self {
            CodeKind::Shell => "#code:sh",
            CodeKind::Sql => "#code:sql",
        }
    }
    fn escape_name(self) -> &'static str {
        match self {
            CodeKind::Shell => "sh",
            CodeKind::Sql => "sql",
        }
    }
    fn of_template_name(name: &str) -> Option<CodeKind> {
        [CodeKind::Shell, CodeKind::Sql].into_iter().find(|k| name.ends_with(k.suffix()))
    }
    fn of_state(state: &minijinja::State) -> Option<CodeKind> {
        match state.auto_escape() {
            AutoEscape::Custom(name) if name == "sh" => Some(CodeKind::Shell),
            AutoEscape::Custom(name) if name == "sql" => Some(CodeKind::Sql),
            _ => None,
        }
    }
}

/// Writes a printed value: as it is in config files, quoted in code.
fn format_value(out: &mut minijinja::Output, state: &mut minijinja::State, value: &JValue) -> Result<(), Error> {
    let Some(kind) = CodeKind::of_state(state) else {
        if !value.is_safe() {
            crate::template_unit::check_value(state.name(), value)?;
        }
        return minijinja::escape_formatter(out, state, value);
    };
    if value.is_safe() {
        // Only our own filters (`quote`, `sql`, `sql_ident`) make safe values in code.
        return out.write_str(value.as_str().unwrap_or_default()).map_err(Error::from);
    }
    let text = if value.is_none() { String::new() } else { value.to_string() };
    let quoted = match kind {
        CodeKind::Shell => crate::shell::quote(&text),
        CodeKind::Sql if value.is_number() => text,
        CodeKind::Sql => crate::shell::sql_string(&text),
    };
    out.write_str(&quoted).map_err(Error::from)
}

/// Refuses a `{{ }}` written inside quotes of `kind`'s language: provision quotes every value
/// itself, and a quoted value inside quotes (`"{{ x }}"`) would be unquoted again.
pub fn check_code_template(source: &str, kind: CodeKind) -> Result<(), String> {
    #[derive(Clone, Copy, PartialEq)]
    enum In {
        Code,
        Single,
        Double,
        Backtick,
    }
    let b = source.as_bytes();
    let mut stack = vec![In::Code];
    let mut i = 0;
    while i < b.len() {
        let top = *stack.last().unwrap_or(&In::Code);
        let next = b.get(i + 1).copied();
        if b[i] == b'{' && matches!(next, Some(b'{') | Some(b'%') | Some(b'#')) {
            let close: &[u8] = match next {
                Some(b'{') => b"}}",
                Some(b'%') => b"%}",
                _ => b"#}",
            };
            if next == Some(b'{') && top != In::Code {
                let what = match (kind, top) {
                    (_, In::Single) => "single quotes",
                    (_, In::Double) => "double quotes",
                    (CodeKind::Sql, _) => "backquotes",
                    (CodeKind::Shell, _) => "a backquoted command",
                };
                let end = source[i..].find("}}").map(|e| i + e + 2).unwrap_or(source.len());
                return Err(format!(
                    "`{}` stands inside {what}; provision quotes every value it prints into {}, so write it outside quotes",
                    &source[i..end],
                    if kind == CodeKind::Shell { "a script" } else { "SQL" }
                ));
            }
            i = source[i + 2..].find(std::str::from_utf8(close).unwrap_or("}}")).map(|e| i + 2 + e + 2).unwrap_or(b.len());
            continue;
        }
        match (kind, top, b[i]) {
            (_, In::Code, b'\\') | (_, In::Double, b'\\') => i += 1,
            (CodeKind::Sql, In::Single, b'\\') => i += 1,
            (_, In::Code, b'\'') => stack.push(In::Single),
            (_, In::Code, b'"') => stack.push(In::Double),
            (_, In::Code, b'`') => stack.push(In::Backtick),
            (CodeKind::Shell, In::Double, b'`') => stack.push(In::Backtick),
            (CodeKind::Shell, In::Code | In::Double, b'$') if next == Some(b'(') => {
                stack.push(In::Code);
                i += 1;
            }
            (CodeKind::Shell, In::Code, b')') if stack.len() > 1 => {
                stack.pop();
            }
            (_, In::Single, b'\'') | (_, In::Double, b'"') | (_, In::Backtick, b'`') => {
                stack.pop();
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

impl Templates {
    /// Renders a role's code (`kind`): every value printed into it is quoted for that
    /// language (see [`CodeKind`]), and a `{{ }}` inside quotes is refused.
    pub fn render_code(&self, source: &str, ctx: &JValue, origin: &dyn Origin, kind: CodeKind) -> Result<String, Diagnostic> {
        check_code_template(source, kind).map_err(|e| {
            Diagnostic::new(e).at(origin.span().start).help("remove the quotes around it: `rm -f -- {{ path }}`, not `rm -f \"{{ path }}\"`")
        })?;
        if !source.contains("{{") && !source.contains("{%") {
            return Ok(source.to_string());
        }
        self.inline_template(source, kind.suffix())
            .and_then(|t| t.render(ctx.clone()))
            .map_err(|e| self.inline_error(&e, source, &Written::whole(source), origin))
    }

    /// The top-level variable names a template file refers to, with those of the files it
    /// includes (none when it does not load; rendering reports why).
    pub fn file_references(&self, name: &str) -> Vec<String> {
        match self.env.get_template(name) {
            Ok(t) => t.undeclared_variables(false).into_iter().collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The top-level variable names an inline template refers to (none when it is not a
    /// template or does not parse; rendering reports the parse error).
    pub fn referenced(&self, source: &str) -> Vec<String> {
        if !source.contains("{{") && !source.contains("{%") {
            return Vec::new();
        }
        match self.inline_template(source, "") {
            Ok(t) => t.undeclared_variables(false).into_iter().collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// Where in a template file `e` is: the failing expression's line and column.
fn file_position(e: &Error, path: &Path) -> Location {
    let line = e.line().unwrap_or(1);
    let column = match (e.template_source(), e.range()) {
        (Some(src), Some(r)) => src.get(..r.start).map(|before| before.rsplit('\n').next().unwrap_or("").chars().count() + 1).unwrap_or(1),
        _ => 1,
    };
    Location::new(path, line, column)
}

/// Where in the YAML scalar `w` (written at `span`) `e`, raised by `compiled`, is: the
/// failing expression, found in the copy of `w.expr` in `compiled` that holds it; the
/// scalar's start when it cannot be mapped.
fn inline_position(e: &Error, compiled: &str, w: &Written, span: &Span) -> Location {
    let in_expr = e.range().filter(|_| !w.expr.is_empty()).and_then(|r| {
        // `<=`: an error at the end of the input points just after the expression.
        compiled.match_indices(w.expr).find(|(i, _)| *i <= r.start && r.start <= i + w.expr.len()).map(|(i, _)| w.at + r.start - i)
    });
    // Without a range, the start of the failing line, when the text was compiled as written.
    let by_line = || {
        let line = e.line()?;
        (compiled == w.text).then(|| w.text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum())
    };
    match in_expr.or_else(by_line) {
        Some(offset) => span.offset(w.text, offset),
        None => span.start.clone(),
    }
}

/// Converts a minijinja error into a diagnostic at `at`, naming the failing expression.
fn to_diagnostic(e: &Error, at: Location) -> Diagnostic {
    let expr = match (e.template_source(), e.range()) {
        (Some(src), Some(r)) => src.get(r).map(str::to_string),
        _ => None,
    };
    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
    let (message, help) = match e.kind() {
        ErrorKind::UndefinedError => (
            match &expr {
                // A bare name is the whole story; minijinja's detail would repeat it.
                Some(x) if x.chars().all(|c| c.is_alphanumeric() || c == '_') => format!("undefined variable `{x}`"),
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
    Diagnostic::new(message).at(at).help(help)
}

fn add_filters(env: &mut Environment<'static>) {
    env.add_filter("to_json", |v: JValue| -> Result<String, Error> {
        serde_json::to_string(&v).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
    });
    env.add_filter("to_yaml", |v: JValue| -> Result<String, Error> {
        serde_yaml::to_string(&v).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
    });
    // In a script, `quote` is provision's own quoting (and printed as is); elsewhere, shlex's.
    env.add_filter("quote", |state: &minijinja::State, v: String| -> Result<JValue, Error> {
        if CodeKind::of_state(state) == Some(CodeKind::Shell) {
            return Ok(JValue::from_safe_string(crate::shell::quote(&v)));
        }
        shlex::try_quote(&v)
            .map(|q| JValue::from(q.into_owned()))
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
    });
    // `sql`: a value as an SQL string literal. In SQL it is printed as is; in a script it is
    // then quoted as one word (`mysql -e {{ "SELECT " ~ (x | sql) }}`).
    env.add_filter("sql", |state: &minijinja::State, v: String| -> JValue {
        let lit = crate::shell::sql_string(&v);
        if CodeKind::of_state(state) == Some(CodeKind::Sql) { JValue::from_safe_string(lit) } else { JValue::from(lit) }
    });
    env.add_filter("sql_ident", |state: &minijinja::State, v: String| -> Result<JValue, Error> {
        let id = crate::shell::sql_ident(&v).map_err(|e| Error::new(ErrorKind::InvalidOperation, e))?;
        Ok(if CodeKind::of_state(state) == Some(CodeKind::Sql) { JValue::from_safe_string(id) } else { JValue::from(id) })
    });
    // A value for a MariaDB option file such as client.cnf.
    env.add_filter("mycnf", |v: String| -> Result<String, Error> {
        crate::shell::mycnf_value(&v).map_err(|e| Error::new(ErrorKind::InvalidOperation, e))
    });
    // A value for Ruby code (puma.rb, faye.ru): a single-quoted literal.
    env.add_filter("ruby_string", |v: JValue| -> String {
        crate::shell::ruby_string(&if v.is_none() { String::new() } else { v.to_string() })
    });
    // A value for redis.conf: one quoted argument, whatever it holds.
    env.add_filter("redis_string", |v: JValue| -> String {
        crate::shell::redis_string(&if v.is_none() { String::new() } else { v.to_string() })
    });
    // One part of a URL (a password in userinfo): everything but unreserved bytes encoded.
    env.add_filter("uri_component", |v: JValue| -> String { crate::shell::uri_component(&v.to_string()) });
    // An IP address (no network) a server listens on.
    env.add_filter("ip_address", |v: JValue| -> Result<String, Error> {
        crate::shell::ip_address(&v.to_string()).map_err(|e| Error::new(ErrorKind::InvalidOperation, e))
    });
    // A path for a configuration language without trustworthy quoting (logrotate's).
    env.add_filter("plain_path", |v: JValue| -> Result<String, Error> {
        crate::shell::plain_path(&v.to_string()).map_err(|e| Error::new(ErrorKind::InvalidOperation, e))
    });
    // An IP address or network (10.0.0.0/24, fd00::1) for a firewall rule, checked: nothing
    // else can reach the rule set.
    env.add_filter("ip_network", |v: JValue| -> Result<String, Error> {
        crate::shell::ip_network(&v.to_string()).map_err(|e| Error::new(ErrorKind::InvalidOperation, e))
    });
    // nginx's server names (a string or a list), each a checked host name (or `_`): a list
    // of names that can add nothing to a config, a command or a certificate.
    env.add_filter("server_names", |v: JValue| -> Result<Vec<String>, Error> {
        let items: Vec<JValue> = if v.as_str().is_some() || v.is_number() { vec![v] } else { v.try_iter()?.collect() };
        if items.is_empty() {
            return Err(Error::new(ErrorKind::InvalidOperation, "no server name: give one name or a list of names"));
        }
        items.iter().map(|n| crate::shell::server_name(&n.to_string()).map_err(|e| Error::new(ErrorKind::InvalidOperation, e))).collect()
    });
    // A value for an environment file read by systemd and by sh.
    env.add_filter("env_value", |v: JValue| -> Result<String, Error> {
        let text = if v.is_none() { String::new() } else { v.to_string() };
        crate::shell::env_file_value(&text).map_err(|e| Error::new(ErrorKind::InvalidOperation, e))
    });
    // `safe` would print a value into code unquoted: refused there.
    env.add_filter("safe", |state: &minijinja::State, v: String| -> Result<JValue, Error> {
        match CodeKind::of_state(state) {
            Some(_) => Err(Error::new(
                ErrorKind::InvalidOperation,
                "`| safe` would paste a value into code unquoted; provision quotes values in code, so drop `| safe`",
            )),
            None => Ok(JValue::from_safe_string(v)),
        }
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
        // A literal block (`|`) at line 9: its lines start at 10 and 11, column 3.
        let span = Span { start: Location::new("roles/x/tasks.yml", 9, 8), lines: vec![(10, 3), (11, 3)] };
        let err = t.render_str("a\n{{ nope }}\n", &context! {}, &span).unwrap_err();
        assert!(err.message.contains("`nope`"), "{err}");
        let at = err.location.expect("a location");
        assert_eq!((at.line, at.column), (11, 6));
        // Not held verbatim (escapes): the scalar's start.
        let err = t.render_str("a\n{{ nope }}\n", &context! {}, &Span::at(Location::new("x.yml", 9, 8))).unwrap_err();
        assert_eq!(err.location.map(|l| (l.line, l.column)), Some((9, 8)));
    }

    #[test]
    fn an_expression_error_speaks_of_what_was_written() {
        let t = Templates::new(Path::new("/nonexistent"));
        let span = Span { start: Location::new("tasks.yml", 2, 9), lines: vec![(2, 10)] };
        let err = t.evaluate("{{ x == }}", &context! { x => 1 }, &span).unwrap_err();
        assert!(err.message.starts_with("template syntax error") && !err.message.contains("`)`"), "{err}");
        assert_eq!(err.location.map(|l| l.line), Some(2));
        let err = t.evaluate("{{ a or missing_one }}", &context! { a => false }, &span).unwrap_err();
        // minijinja's span is the failing expression's: it starts at `a`.
        assert!(err.message.contains("`a or missing_one`"), "{err}");
        assert_eq!(err.location.map(|l| (l.line, l.column)), Some((2, 13)));
        assert_eq!(t.evaluate("a or b | length", &context! { a => false, b => [1, 2] }, &span).unwrap(), serde_json::json!(2));
        assert_eq!(expression_of("  {{  x + 1 }} "), (6, "x + 1"));
    }

    #[test]
    fn an_error_in_a_template_file_points_at_the_expression_in_every_build() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("app.conf.j2"), "listen 80;\nserver_name  {{ nope }};\n").expect("write");
        let t = Templates::new(dir.path());
        let err = t.render_file("app.conf.j2", &context! {}).unwrap_err();
        // set_debug(true): the same in a release build as here.
        assert!(err.message.contains("`nope`"), "{err}");
        let at = err.location.clone().expect("a location");
        assert_eq!((at.line, at.column), (2, 17), "{err}");
    }

    #[test]
    fn values_in_code_are_quoted_for_their_language() {
        let t = Templates::new(Path::new("/nonexistent"));
        let at = Location::file("t");
        let ctx = context! { x => "a'b $(id)", n => 42, p => "it's" };
        assert_eq!(t.render_code("echo {{ x }} {{ n }}", &ctx, &at, CodeKind::Shell).unwrap(), "echo 'a'\"'\"'b $(id)' 42");
        assert_eq!(t.render_code("echo {{ x | quote }}", &ctx, &at, CodeKind::Shell).unwrap(), "echo 'a'\"'\"'b $(id)'");
        assert_eq!(t.render_code("SELECT {{ p }}, {{ n }} FROM {{ 'd`b' | sql_ident }}", &ctx, &at, CodeKind::Sql).unwrap(), "SELECT 'it\\'s', 42 FROM `d``b`");
        assert_eq!(t.render_code("mysql -e {{ 'SELECT ' ~ (p | sql) }}", &ctx, &at, CodeKind::Shell).unwrap(), "mysql -e 'SELECT '\"'\"'it\\'\"'\"'s'\"'\"''");
        assert!(t.render_code("echo {{ x | safe }}", &ctx, &at, CodeKind::Shell).is_err());
        // Outside code, nothing changes.
        assert_eq!(t.render_str("{{ x }}", &ctx, &at).unwrap(), "a'b $(id)");
    }

    #[test]
    fn a_value_inside_quotes_of_code_is_refused() {
        for bad in ["echo \"{{ x }}\"", "echo '{{ x }}'", "echo `cat {{ x }}`", "a \"$(b) {{ x }}\""] {
            assert!(check_code_template(bad, CodeKind::Shell).is_err(), "{bad}");
        }
        for good in ["echo {{ x }}", "[ \"$(printf '%s' {{ x }})\" = a ]", "echo \"a\" {{ x }} 'b'", "{% if a %}'{% endif %}"] {
            assert!(check_code_template(good, CodeKind::Shell).is_ok(), "{good}");
        }
        assert!(check_code_template("SELECT '{{ x }}'", CodeKind::Sql).is_err());
        assert!(check_code_template("SELECT `{{ x }}`", CodeKind::Sql).is_err());
        assert!(check_code_template("SELECT 'it\\'s', {{ x }}", CodeKind::Sql).is_ok());
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
