//! Progress of a wait, on stderr: on a terminal a spinner with the elapsed time and what is
//! awaited, redrawn in place; otherwise (CI logs, pipes) one line each time the status changes,
//! without control characters.

use std::future::Future;
use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// How often a wait looks at the cluster, and how often the spinner moves in between.
const LOOK_EVERY: Duration = Duration::from_secs(1);
const FRAME: Duration = Duration::from_millis(100);

/// What one look at the cluster found.
pub enum Look<T> {
    /// What was awaited is there.
    Done(T),
    /// Not yet: what stands, for the status line.
    Waiting(String),
}

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

    /// Looks with `look` once a second, showing each status and moving the spinner in between,
    /// until it is done (`Ok(value)`) or `timeout` has passed (`Err(last status)`, for the
    /// caller to word). An error from `look` ends the wait at once. The one polling loop of
    /// every command that waits.
    pub async fn poll<T, F, Fut>(
        &mut self,
        timeout: Duration,
        mut look: F,
    ) -> anyhow::Result<Result<T, String>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<Look<T>>>,
    {
        loop {
            let status = match look().await? {
                Look::Done(value) => return Ok(Ok(value)),
                Look::Waiting(status) => status,
            };
            self.status(&status);
            if self.elapsed() >= timeout {
                return Ok(Err(status));
            }
            let next = Instant::now() + LOOK_EVERY;
            while Instant::now() < next {
                self.draw();
                tokio::time::sleep(FRAME).await;
            }
        }
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

    #[tokio::test]
    async fn a_poll_ends_when_done_when_out_of_time_or_at_an_error() {
        let limit = Duration::from_secs(60);
        // Done at the second look, with the value.
        let looks = std::cell::Cell::new(0);
        let mut progress = Progress::start("a test");
        let outcome = tokio::time::timeout(
            limit,
            progress.poll(limit, || {
                looks.set(looks.get() + 1);
                let look = if looks.get() < 2 {
                    Look::Waiting("not yet".into())
                } else {
                    Look::Done(7)
                };
                async move { Ok(look) }
            }),
        )
        .await
        .expect("in time");
        assert_eq!(outcome.expect("no error"), Ok(7));
        assert_eq!(looks.get(), 2);
        // Out of time: the last status, after one look.
        let looks = std::cell::Cell::new(0);
        let outcome = tokio::time::timeout(
            limit,
            Progress::start("a test").poll(Duration::ZERO, || {
                looks.set(looks.get() + 1);
                async { Ok(Look::<()>::Waiting("still starting".into())) }
            }),
        )
        .await
        .expect("in time");
        assert_eq!(outcome.expect("no error"), Err("still starting".to_owned()));
        assert_eq!(looks.get(), 1);
        // An error ends the wait at once.
        let outcome = tokio::time::timeout(
            limit,
            Progress::start("a test").poll(limit, || async {
                anyhow::bail!("gone") as anyhow::Result<Look<()>>
            }),
        )
        .await
        .expect("in time");
        assert_eq!(outcome.expect_err("the look's error").to_string(), "gone");
    }

    #[test]
    fn elapsed_time_reads_like_a_clock() {
        assert_eq!(elapsed(Duration::from_secs(42)), "42s");
        assert_eq!(elapsed(Duration::from_secs(65)), "1m05s");
    }
}
