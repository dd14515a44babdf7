//! The terminal across every way out of the client: Ctrl-C at any prompt (the password
//! prompt included, where echo is off) restores the terminal's settings as they were at
//! start, says whether a money request was left pending, and exits; Ctrl-D and errors
//! return normally, and the password reader restores echo itself on those paths.
//!
//! The settings are saved and restored with `stty` (`stty -g`, then `stty SAVED`), so no
//! terminal calls are made here directly. Ctrl-C with nothing pending exits with status 0, so
//! `make run-client` stays quiet; with a request pending it exits with status 1 after
//! printing the request and its transaction id.

use std::io::{self, IsTerminal, Write};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};

/// The terminal settings at start (`stty -g`), if standard input is a terminal.
static SAVED: Mutex<Option<String>> = Mutex::new(None);

/// What to print if the person interrupts while a money request waits for its outcome.
static PENDING: Mutex<Option<String>> = Mutex::new(None);

/// Held by whichever thread is ending the process on Ctrl-C, so it ends once.
static EXITING: Mutex<()> = Mutex::new(());

/// Saves the terminal's settings and installs the Ctrl-C handler.
pub fn install() -> Result<(), String> {
    if io::stdin().is_terminal()
        && let Ok(output) = Command::new("stty").arg("-g").stdin(Stdio::inherit()).output()
        && output.status.success()
    {
        let settings = String::from_utf8_lossy(&output.stdout).trim().to_string();
        *SAVED.lock().unwrap_or_else(PoisonError::into_inner) = Some(settings);
    }
    ctrlc::set_handler(|| interrupted()).map_err(|err| format!("cannot catch Ctrl-C: {err}"))
}

/// Records (`Some`) or clears (`None`) the description of a money request whose outcome is
/// not known yet.
pub fn set_pending(description: Option<String>) {
    *PENDING.lock().unwrap_or_else(PoisonError::into_inner) = description;
}

/// Puts the terminal back as it was at start (echo on).
pub fn restore() {
    let saved = SAVED.lock().unwrap_or_else(PoisonError::into_inner).clone();
    if let Some(settings) = saved {
        let _ = Command::new("stty").arg(&settings).stdin(Stdio::inherit()).status();
    }
}

/// Ends the process after Ctrl-C: restores the terminal, names any pending request, exits.
/// Called by the signal handler, and by a reader that saw the Ctrl-C itself (the password
/// reader reads keys one by one, sees Ctrl-C as a key and raises the signal): whichever
/// comes first ends the process, the other waits for it.
pub fn interrupted() -> ! {
    let _exiting = EXITING.lock().unwrap_or_else(PoisonError::into_inner);
    restore();
    let pending = PENDING.lock().unwrap_or_else(PoisonError::into_inner).take();
    let mut stdout = io::stdout();
    let _ = writeln!(stdout);
    match pending {
        None => {
            let _ = writeln!(stdout, "Interrupted (Ctrl-C). Goodbye.");
            let _ = stdout.flush();
            std::process::exit(0);
        }
        Some(description) => {
            let _ = stdout.flush();
            eprintln!("bank-client: interrupted (Ctrl-C); {description}");
            std::process::exit(1);
        }
    }
}
