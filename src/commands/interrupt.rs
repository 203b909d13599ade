//! Ctrl-C and the confirmation prompt. The first Ctrl-C stops new work, the second exits.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use miette::{IntoDiagnostic, Result, miette};

/// What a Ctrl-C has said to the run: set once, then nothing new starts.
#[derive(Default)]
pub struct Interrupt {
    pub stop: AtomicBool,
    /// Wakes the confirmation prompt.
    notify: tokio::sync::Notify,
}

/// First Ctrl-C: start nothing new, let what is in flight finish. Second: leave at once.
/// The listener is registered here, before the lock is taken, not when the task first runs.
pub fn watch_interrupts(
    interrupt: Arc<Interrupt>,
    stack: String,
) -> Result<tokio::task::JoinHandle<()>> {
    let mut interrupts = Interrupts::listen()?;
    Ok(tokio::spawn(async move {
        if !interrupts.next().await {
            return;
        }
        interrupt.stop.store(true, Ordering::SeqCst);
        interrupt.notify.notify_one();
        eprintln!("\nInterrupt received: starting nothing new (Ctrl-C again to exit now)");
        if interrupts.next().await {
            eprintln!(
                "interrupted twice: exiting now. The stack's lock stays held until its lease runs out (a run on this host takes it over at once), or: prefect-ecs force-unlock {stack}"
            );
            std::process::exit(130);
        }
    }))
}

struct Interrupts {
    #[cfg(unix)]
    sigint: tokio::signal::unix::Signal,
}

impl Interrupts {
    fn listen() -> Result<Interrupts> {
        Ok(Interrupts {
            #[cfg(unix)]
            sigint: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .into_diagnostic()?,
        })
    }

    async fn next(&mut self) -> bool {
        #[cfg(unix)]
        return self.sigint.recv().await.is_some();
        #[cfg(not(unix))]
        return tokio::signal::ctrl_c().await.is_ok();
    }
}

/// Ask for "yes" on the terminal. A Ctrl-C at the prompt cancels: the run then ends the
/// normal way, giving the lock back. (The line is read on a thread of its own: a blocking
/// read would keep the runtime from ending.)
/// Asks whether to `verb` `target` (`stack "dev" in account 123456789012, us-east-1, …`).
pub async fn confirm(verb: &str, target: &str, interrupt: &Interrupt) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(miette!(
            "{verb} needs confirmation but stdin is not a terminal: pass --auto-approve to {verb} without asking (as in CI)"
        ));
    }
    let cancelled = || miette!("{verb} cancelled by Ctrl-C at the prompt: nothing was changed");
    if interrupt.stop.load(Ordering::SeqCst) {
        return Err(cancelled());
    }
    print!("\nDo you want to {verb} {target}? Only 'yes' will be accepted: ");
    std::io::stdout().flush().into_diagnostic()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = std::io::stdin().lock().read_line(&mut line).map(|_| line);
        let _ = tx.send(read);
    });
    let line = tokio::select! {
        read = rx => read.into_diagnostic()?.into_diagnostic()?,
        () = interrupt.notify.notified() => {
            println!();
            return Err(cancelled());
        }
    };
    if line.trim() != "yes" {
        return Err(miette!("{verb} cancelled"));
    }
    Ok(())
}
