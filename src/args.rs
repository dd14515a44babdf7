//! A tiny command-line parser shared by the binaries, with the usual conventions:
//! `--flag value`, `--flag=value`, bare `--switch`, `-h` for `--help`, `--` to end the
//! options, and positional words. Each binary lists its flags, so an unknown one is refused
//! as unknown (not mistaken for a flag that wants a value). No dependency needed for this
//! much (README, "Dependencies", says why not `lexopt`).

use std::collections::VecDeque;

/// Parsed arguments.
#[derive(Debug, Default)]
pub struct Args {
    flags: Vec<(String, Option<String>)>,
    positional: VecDeque<String>,
}

impl Args {
    /// Splits `args` (without the program name). Flags in `switches` take no value (but may
    /// be given one with `=`, as in `--trace=bytes`); flags in `valued` take one. Any other
    /// option is refused as unknown. `-h` means `--help` when `help` is a switch.
    pub fn parse(args: impl IntoIterator<Item = String>, switches: &[&str], valued: &[&str]) -> Result<Self, String> {
        let mut parsed = Self::default();
        let mut iter = args.into_iter();
        while let Some(arg) = iter.next() {
            if arg == "--" {
                parsed.positional.extend(iter.by_ref());
                break;
            }
            if arg == "-h" && switches.contains(&"help") {
                parsed.flags.push(("help".into(), None));
                continue;
            }
            let Some(flag) = arg.strip_prefix("--") else {
                if arg.starts_with('-') && arg.len() > 1 {
                    return Err(format!("unknown option {arg}"));
                }
                parsed.positional.push_back(arg);
                continue;
            };
            let (name, value) = match flag.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (flag, None),
            };
            let known = switches.contains(&name) || valued.contains(&name);
            if !known {
                return Err(format!("unknown option --{name}"));
            }
            let value = match value {
                Some(value) => Some(value),
                None if valued.contains(&name) => Some(iter.next().ok_or_else(|| format!("--{name} needs a value"))?),
                None => None,
            };
            parsed.flags.push((name.to_string(), value));
        }
        Ok(parsed)
    }

    /// Takes the next positional word.
    pub fn next_positional(&mut self) -> Option<String> {
        self.positional.pop_front()
    }

    /// Takes a flag: `None` if absent, `Some(None)` for a bare switch, `Some(Some(v))` with a value.
    pub fn take(&mut self, name: &str) -> Option<Option<String>> {
        let index = self.flags.iter().position(|(flag, _)| flag == name)?;
        Some(self.flags.remove(index).1)
    }

    /// Takes a flag that needs a value.
    pub fn value(&mut self, name: &str) -> Result<Option<String>, String> {
        match self.take(name) {
            None => Ok(None),
            Some(Some(value)) => Ok(Some(value)),
            Some(None) => Err(format!("--{name} needs a value")),
        }
    }

    /// Takes a flag with a numeric value.
    pub fn number<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>, String> {
        self.value(name)?
            .map(|text| {
                text.parse()
                    .map_err(|_| format!("--{name} needs a number, got {text:?}"))
            })
            .transpose()
    }

    /// Takes a flag with a numeric value that must lie in `range`; the error names the range.
    pub fn number_in<T>(&mut self, name: &str, range: std::ops::RangeInclusive<T>) -> Result<Option<T>, String>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display,
    {
        match self.number::<T>(name)? {
            Some(n) if !range.contains(&n) => {
                Err(format!("--{name} must be {}..={}, got {n}", range.start(), range.end()))
            }
            other => Ok(other),
        }
    }

    /// Fails if anything was not taken (a flag this command does not use, a repeated flag,
    /// or an extra word).
    pub fn finish(self) -> Result<(), String> {
        if let Some((flag, _)) = self.flags.first() {
            return Err(format!("option --{flag} does not apply here (or was given twice)"));
        }
        if let Some(word) = self.positional.front() {
            return Err(format!("unexpected argument {word:?}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<Args, String> {
        Args::parse(
            words.iter().map(|w| w.to_string()),
            &["demo", "trace", "help"],
            &["data", "n"],
        )
    }

    #[test]
    fn parses_values_switches_and_positionals() {
        let mut args = parse(&[
            "add-account",
            "bob",
            "--data",
            "d",
            "--trace=bytes",
            "--demo",
            "--n",
            "5",
        ])
        .unwrap();
        assert_eq!(args.next_positional().as_deref(), Some("add-account"));
        assert_eq!(args.next_positional().as_deref(), Some("bob"));
        assert_eq!(args.value("data").unwrap().as_deref(), Some("d"));
        assert_eq!(args.take("trace"), Some(Some("bytes".into())));
        assert_eq!(args.take("demo"), Some(None));
        assert_eq!(args.number::<u32>("n").unwrap(), Some(5));
        args.finish().unwrap();
    }

    #[test]
    fn an_unknown_option_is_refused_as_unknown_even_before_a_value() {
        assert_eq!(parse(&["--bogus", "1"]).unwrap_err(), "unknown option --bogus");
        assert_eq!(parse(&["--bogus"]).unwrap_err(), "unknown option --bogus");
        assert_eq!(parse(&["--bogus=1"]).unwrap_err(), "unknown option --bogus");
        assert_eq!(parse(&["-x"]).unwrap_err(), "unknown option -x");
    }

    #[test]
    fn refuses_missing_values_and_bad_numbers() {
        assert_eq!(parse(&["--data"]).unwrap_err(), "--data needs a value");
        assert!(parse(&["--n", "x"]).unwrap().number::<u32>("n").is_err());
    }

    #[test]
    fn a_bounded_number_outside_its_range_is_refused_with_the_range() {
        let mut args = parse(&["--n", "18446744073709551615"]).unwrap();
        assert_eq!(
            args.number_in::<u64>("n", 1..=86_400).unwrap_err(),
            "--n must be 1..=86400, got 18446744073709551615"
        );
        let mut args = parse(&["--n", "86400"]).unwrap();
        assert_eq!(args.number_in::<u64>("n", 1..=86_400).unwrap(), Some(86_400));
        let mut args = parse(&["--n", "1"]).unwrap();
        assert_eq!(args.number_in::<u64>("n", 1..=86_400).unwrap(), Some(1));
        let mut args = parse(&["--n", "0"]).unwrap();
        assert!(args.number_in::<u64>("n", 1..=86_400).is_err());
        assert_eq!(parse(&[]).unwrap().number_in::<u64>("n", 1..=2).unwrap(), None);
    }

    #[test]
    fn dash_h_is_help_and_double_dash_ends_the_options() {
        let mut args = parse(&["-h", "--", "--data"]).unwrap();
        assert_eq!(args.take("help"), Some(None));
        assert_eq!(args.next_positional().as_deref(), Some("--data"));
    }

    #[test]
    fn a_flag_left_over_fails_at_finish() {
        let args = parse(&["--demo"]).unwrap();
        assert!(args.finish().unwrap_err().contains("--demo"));
    }
}
