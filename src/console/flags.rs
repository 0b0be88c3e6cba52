//! The option loop shared by `gopxe console` and `gopxe firstboot`.
//!
//! Layer: entry point (pure argument handling over lexopt). Each option
//! comes back as its text (`--name` or `-c`); positional arguments are
//! refused with an error naming the subcommand; values that are not UTF-8
//! are an error naming the option.

use std::ffi::OsString;

/// Reads the options of one subcommand.
pub struct Flags {
    parser: lexopt::Parser,
    command: &'static str,
}

impl Flags {
    pub fn new(args: Vec<OsString>, command: &'static str) -> Flags {
        Flags {
            parser: lexopt::Parser::from_args(args),
            command,
        }
    }

    /// The next option as `--name` or `-c`, or `None` at the end.
    pub fn next_option(&mut self) -> Result<Option<String>, String> {
        use lexopt::prelude::*;
        match self.parser.next().map_err(|e| e.to_string())? {
            None => Ok(None),
            Some(Short(c)) => Ok(Some(format!("-{c}"))),
            Some(Long(l)) => Ok(Some(format!("--{l}"))),
            Some(Value(v)) => Err(format!(
                "{}: unexpected argument {v:?}; try --help",
                self.command
            )),
        }
    }

    /// The value of the option just read; `name` is used in errors.
    pub fn value(&mut self, name: &str) -> Result<String, String> {
        self.parser
            .value()
            .map_err(|e| e.to_string())?
            .into_string()
            .map_err(|_| format!("--{name}: the value is not valid UTF-8"))
    }

    /// The error for an option this subcommand does not take.
    pub fn unknown(&self, option: &str) -> String {
        format!("{}: unknown option {option}; try --help", self.command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_values_and_errors() {
        let args = ["--config", "x.toml", "-h", "stray"]
            .map(OsString::from)
            .to_vec();
        let mut f = Flags::new(args, "console");
        assert_eq!(f.next_option().unwrap().as_deref(), Some("--config"));
        assert_eq!(f.value("config").unwrap(), "x.toml");
        assert_eq!(f.next_option().unwrap().as_deref(), Some("-h"));
        assert!(
            f.next_option()
                .unwrap_err()
                .contains("console: unexpected argument")
        );
        let mut missing = Flags::new(vec![OsString::from("--config")], "x");
        assert_eq!(missing.next_option().unwrap().as_deref(), Some("--config"));
        assert!(
            missing.value("config").is_err(),
            "an option at the end has no value"
        );
        assert_eq!(
            f.unknown("--nope"),
            "console: unknown option --nope; try --help"
        );
    }
}
