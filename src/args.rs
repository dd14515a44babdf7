//! A tiny command-line parser shared by the binaries: `--flag value`, `--flag=value`,
//! bare `--switch`, and positional words. No dependency needed for this much.

use std::collections::VecDeque;

/// Parsed arguments.
#[derive(Debug, Default)]
pub struct Args {
    flags: Vec<(String, Option<String>)>,
    positional: VecDeque<String>,
}

impl Args {
    /// Splits `args` (without the program name). Flags listed in `switches` take no value.
    pub fn parse(args: impl IntoIterator<Item = String>, switches: &[&str]) -> Result<Self, String> {
        let mut parsed = Self::default();
        let mut iter = args.into_iter();
        while let Some(arg) = iter.next() {
            let Some(flag) = arg.strip_prefix("--") else {
                parsed.positional.push_back(arg);
                continue;
            };
            if let Some((name, value)) = flag.split_once('=') {
                parsed.flags.push((name.to_string(), Some(value.to_string())));
            } else if switches.contains(&flag) {
                parsed.flags.push((flag.to_string(), None));
            } else {
                let value = iter.next().ok_or_else(|| format!("--{flag} needs a value"))?;
                parsed.flags.push((flag.to_string(), Some(value)));
            }
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

    /// Fails if anything was not taken (an unknown flag or an extra word).
    pub fn finish(self) -> Result<(), String> {
        if let Some((flag, _)) = self.flags.first() {
            return Err(format!("unknown option --{flag}"));
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

    fn parse(words: &[&str]) -> Args {
        Args::parse(words.iter().map(|w| w.to_string()), &["demo", "trace"]).unwrap()
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
        ]);
        assert_eq!(args.next_positional().as_deref(), Some("add-account"));
        assert_eq!(args.next_positional().as_deref(), Some("bob"));
        assert_eq!(args.value("data").unwrap().as_deref(), Some("d"));
        assert_eq!(args.take("trace"), Some(Some("bytes".into())));
        assert_eq!(args.take("demo"), Some(None));
        assert_eq!(args.number::<u32>("n").unwrap(), Some(5));
        args.finish().unwrap();
    }

    #[test]
    fn refuses_unknown_flags_and_missing_values() {
        assert!(parse(&["--bogus", "1"]).finish().is_err());
        assert!(Args::parse(["--data".to_string()], &[]).is_err());
        assert!(parse(&["--n", "x"]).number::<u32>("n").is_err());
    }
}
