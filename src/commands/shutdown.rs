//! The one shutdown path of every long-running command (`run`, `conform`, `fuzz`, `serve`):
//! SIGINT or SIGTERM once asks the command to drain — stop starting work, finish what is in
//! flight, write its report — and a second one, given later, aborts.
//!
//! [`commands::execute`](super::execute) installs the handlers once and hands each command a
//! [`Shutdown`]; the command decides what draining means (the runner's clients close, the server
//! sends 1001, the supervisor forwards the signal to its workers). Aborting is done here, by
//! dropping the command's future, so that child processes spawned with `kill_on_drop` go with
//! it. This module never decides exit codes: an abort reports [`Outcome::Interrupted`] and
//! `outcome.rs` maps it.

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::outcome::Outcome;

/// A second signal within this time of the first is the same request, not an abort: `timeout`
/// and process supervisors signal a process and its group at once, and a person cannot press
/// Ctrl-C twice that fast.
const SAME_REQUEST: Duration = Duration::from_millis(300);

/// What a command is told about signals: when to drain, and (for [`run_until_aborted`]) when
/// to give up.
#[derive(Debug, Clone)]
pub struct Shutdown {
    drain: CancellationToken,
    abort: CancellationToken,
}

impl Shutdown {
    /// Installs the SIGINT and SIGTERM handlers. `on_drain` is printed when the first signal
    /// arrives (none for a process whose parent speaks for it).
    pub fn listen(on_drain: Option<&'static str>) -> anyhow::Result<Shutdown> {
        let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let shutdown = Shutdown::manual();
        let (drain, abort) = (shutdown.drain.clone(), shutdown.abort.clone());
        tokio::spawn(async move {
            either(&mut interrupt, &mut terminate).await;
            let first = Instant::now();
            if let Some(message) = on_drain {
                eprintln!("\n{message} (Ctrl-C again to abort)");
            }
            drain.cancel();
            loop {
                either(&mut interrupt, &mut terminate).await;
                if first.elapsed() >= SAME_REQUEST {
                    break;
                }
            }
            eprintln!("aborted");
            abort.cancel();
        });
        Ok(shutdown)
    }

    /// A shutdown that only code triggers (tests; commands that have no signals of their own).
    pub fn manual() -> Shutdown {
        Shutdown { drain: CancellationToken::new(), abort: CancellationToken::new() }
    }

    /// Cancelled when the command should drain; hand it to the library.
    pub fn drain_token(&self) -> CancellationToken {
        self.drain.clone()
    }

    /// Resolves when the command should drain.
    pub async fn draining(&self) {
        self.drain.cancelled().await;
    }

    /// Asks for a drain, as the first signal would.
    pub fn request_drain(&self) {
        self.drain.cancel();
    }

    /// Asks for an abort, as a second signal would.
    pub fn request_abort(&self) {
        self.drain.cancel();
        self.abort.cancel();
    }
}

/// Runs a command until it finishes, or until an abort: then its future is dropped (its child
/// processes are killed with it) and the outcome is [`Outcome::Interrupted`].
pub async fn run_until_aborted(
    shutdown: &Shutdown,
    command: impl Future<Output = anyhow::Result<Outcome>>,
) -> anyhow::Result<Outcome> {
    tokio::select! {
        outcome = command => outcome,
        () = shutdown.abort.cancelled() => Ok(Outcome::Interrupted),
    }
}

async fn either(interrupt: &mut Signal, terminate: &mut Signal) {
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_abort_drops_the_command_and_reports_an_interruption() {
        let shutdown = Shutdown::manual();
        let dropped = CancellationToken::new();
        let guard = dropped.clone().drop_guard();
        let command = async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok(Outcome::Passed)
        };
        shutdown.request_abort();
        let outcome = run_until_aborted(&shutdown, command).await.unwrap();
        assert!(matches!(outcome, Outcome::Interrupted));
        assert!(dropped.is_cancelled(), "the command's future was dropped");
    }

    #[tokio::test]
    async fn a_drain_lets_the_command_finish_its_own_way() {
        let shutdown = Shutdown::manual();
        let seen = shutdown.clone();
        let command = async move {
            seen.draining().await;
            Ok(Outcome::Failed)
        };
        shutdown.request_drain();
        let outcome = run_until_aborted(&shutdown, command).await.unwrap();
        assert!(matches!(outcome, Outcome::Failed));
    }
}
