//! Values printed into systemd unit files. A unit has no quoting that holds a line break: a
//! value with one would end its line and start a setting of its own (`ExecStartPre=+...`
//! runs as root, whatever `User=` says). So every value printed into a unit template is
//! checked to be one line, whatever a role's own filters did or did not check.

use minijinja::{Error, ErrorKind, Value as JValue};

/// Whether `template` is a systemd unit file's template (`*.service.j2`, `*.timer.j2`, ...).
pub fn is_unit(template: &str) -> bool {
    [".service.j2", ".timer.j2", ".socket.j2", ".path.j2", ".mount.j2"].iter().any(|s| template.ends_with(s))
}

/// Refuses `value` printed into `template` when that is a unit and the value holds a line
/// break or another control character (a carriage return ends a line for systemd too).
pub fn check_value(template: &str, value: &JValue) -> Result<(), Error> {
    if !is_unit(template) {
        return Ok(());
    }
    let text = if value.is_none() { String::new() } else { value.to_string() };
    match text.chars().find(|c| c.is_control()) {
        Some(c) => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("{text:?} holds {c:?}: in a systemd unit it would end the line and start a setting of its own; a value printed into a unit must be one line"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_refuses_a_value_that_would_start_a_line_and_keeps_the_rest() {
        let hostile = [".\nExecStartPre=+/bin/sh -c id", "a\rUser=root", "x\0", "\n", "-e\nX=1"];
        for v in hostile {
            assert!(check_value("sidekiq.service.j2", &JValue::from(v)).is_err(), "{v:?}");
            assert!(check_value("backup.timer.j2", &JValue::from(v)).is_err(), "{v:?}");
            // Other config files have their own filters; this check is for units.
            assert!(check_value("site.j2", &JValue::from(v)).is_ok(), "{v:?}");
        }
        for v in ["./worker.rb", "'quoted' \"double\" \\ $(id) -leading %i", "", "10.0.0.1"] {
            assert!(check_value("sidekiq.service.j2", &JValue::from(v)).is_ok(), "{v:?}");
        }
        assert!(check_value("sidekiq.service.j2", &JValue::from(5)).is_ok());
    }
}
