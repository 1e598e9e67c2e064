//! Progress of a wait, on stderr: on a terminal a spinner with the elapsed time and what is
//! awaited, redrawn in place; otherwise (CI logs, pipes) one line each time the status changes,
//! without control characters.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// One wait's display.
#[derive(Debug)]
pub struct Progress {
    what: String,
    status: String,
    started: Instant,
    frame: usize,
    terminal: bool,
}

impl Progress {
    /// `what` is awaited ("ControlPlane cp1 to be Ready").
    pub fn start(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            status: String::new(),
            started: Instant::now(),
            frame: 0,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Shows the current status; off a terminal only when it changed.
    pub fn status(&mut self, status: &str) {
        if status != self.status {
            // Statuses quote conditions, which carry what tenants wrote.
            self.status = kflex_core::text::escape_unsafe(status).into_owned();
            if !self.terminal {
                eprintln!("waiting for {}: {status}", self.what);
            }
        }
        self.draw();
    }

    /// Advances the spinner (call often; does nothing off a terminal).
    pub fn draw(&mut self) {
        if !self.terminal {
            return;
        }
        self.frame = (self.frame + 1) % FRAMES.len();
        let mut stderr = std::io::stderr().lock();
        // Clear the line, then redraw: the status may be shorter than the last one.
        let _ = write!(
            stderr,
            "\r\x1b[2K{} waiting for {} ({}): {}",
            FRAMES[self.frame],
            self.what,
            elapsed(self.elapsed()),
            self.status
        );
        let _ = stderr.flush();
    }

    /// Ends the display with a final line.
    pub fn finish(&mut self, outcome: &str) {
        if self.terminal {
            eprint!("\r\x1b[2K");
        }
        let outcome = kflex_core::text::escape_unsafe(outcome);
        eprintln!("{outcome} ({})", elapsed(self.elapsed()));
    }
}

/// `1m05s`, `42s`.
pub fn elapsed(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..60 => format!("{seconds}s"),
        _ => format!("{}m{:02}s", seconds / 60, seconds % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_time_reads_like_a_clock() {
        assert_eq!(elapsed(Duration::from_secs(42)), "42s");
        assert_eq!(elapsed(Duration::from_secs(65)), "1m05s");
    }
}
