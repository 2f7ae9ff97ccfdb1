//! The kill rota: SIGKILLs of every relay and every agent on a schedule of their own, beside
//! (and overlapping) the random faults, so that a run guarantees a number of kills of each
//! process — the long run's ≥ 20 each — whatever the random schedule draws. Rounds of four, one
//! kill of each process per round in a seeded order, evenly spaced over the run (± a quarter of
//! the spacing).

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use tokio_util::sync::CancellationToken;

use crate::{
    faults::{Fault, FaultKind, NAMES, recovery},
    system::System,
};

/// Kills of each process a run of `minutes` makes: 22 in 30 minutes (two to spare over the
/// issue's 20), at least 2.
pub fn per_process(minutes: f64) -> usize {
    ((minutes * 22.0 / 30.0).ceil() as usize).max(2)
}

/// Kills each process `per_process` times over `duration`, until `stop`.
pub async fn run(
    system: &System,
    seed: u64,
    run_start: Instant,
    duration: Duration,
    per_process: usize,
    stop: CancellationToken,
) -> Vec<Fault> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x4b11);
    let spacing = duration / (4 * per_process as u32);
    let mut faults = Vec::new();
    let mut order = [0usize, 1, 2, 3];
    for n in 0..4 * per_process {
        if n % 4 == 0 {
            order.shuffle(&mut rng);
        }
        let due = run_start + spacing * n as u32 + spacing.mul_f64(rng.gen_range(0.25..0.75));
        tokio::select! {
            () = tokio::time::sleep_until(due.into()) => {}
            () = stop.cancelled() => return faults,
        }
        let which = order[n % 4];
        let (kind, process) = if which < 2 {
            (FaultKind::KillRelay, &system.relays[which].process)
        } else {
            (FaultKind::KillAgent, &system.agents[which - 2].process)
        };
        let Some(process) = process else { continue };
        // Between a random-schedule kill and its restart there is no process: wait for it.
        let start = Instant::now();
        let mut killed = process.kill();
        while !killed && start.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            killed = process.kill();
        }
        if !killed {
            eprintln!("chaos: rota: {} has no process to kill", NAMES[which]);
            continue;
        }
        let killed = Instant::now();
        eprintln!(
            "chaos: t+{:>4}s {} ({}), rota",
            killed.duration_since(run_start).as_secs(),
            kind.name(),
            NAMES[which]
        );
        let recovered = recovery(system, kind, killed).await;
        faults.push(Fault {
            kind,
            target: NAMES[which].to_owned(),
            start: killed,
            repaired: killed,
            recovered,
        });
    }
    faults
}
