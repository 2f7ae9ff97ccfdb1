//! The faults that degrade rather than stop: latency and loss on one process's link to
//! RabbitMQ or PostgreSQL (the TCP proxy's impairments, `testkit::proxy`), an agent's data disk
//! filling up (`disk`), and a jump of an agent's wall clock (libfaketime). Each is held for a
//! window, then repaired; `faults::run` measures the recovery.

use std::time::Duration;

use kitchen_testkit::proxy::Impairment;
use rand::{Rng, rngs::StdRng};

use crate::{
    faults::{FaultKind, NAMES},
    system::System,
};

/// Injects `kind` on process `which` (0–3: relays then agents; an agent for the disk and the
/// clock), holds it, repairs it; returns the process's name.
pub async fn inject(
    system: &System,
    kind: FaultKind,
    which: usize,
    rng: &mut StdRng,
) -> &'static str {
    let hold = Duration::from_millis(rng.gen_range(3_000..12_000));
    match kind {
        FaultKind::LatencyBroker
        | FaultKind::LatencyPg
        | FaultKind::LossBroker
        | FaultKind::LossPg => {
            let links = if matches!(kind, FaultKind::LatencyBroker | FaultKind::LossBroker) {
                &system.broker_links
            } else {
                &system.pg_links
            };
            let impairment = if matches!(kind, FaultKind::LatencyBroker | FaultKind::LatencyPg) {
                Impairment {
                    latency: Duration::from_millis(rng.gen_range(50..300)),
                    jitter: Duration::from_millis(rng.gen_range(0..100)),
                    ..Impairment::default()
                }
            } else {
                Impairment {
                    latency: Duration::from_millis(rng.gen_range(0..50)),
                    stall_chance: rng.gen_range(0.02..0.2),
                    stall_max: Duration::from_millis(rng.gen_range(500..3_000)),
                    reset_chance: rng.gen_range(0.002..0.02),
                    ..Impairment::default()
                }
            };
            eprintln!("chaos:          {impairment:?} for {hold:?}");
            links[which].impair(impairment);
            tokio::time::sleep(hold).await;
            links[which].unimpair();
            NAMES[which]
        }
        FaultKind::DiskFull => {
            // Up to past the queue's delivery limit (20) at the agent's one redelivery a second.
            let hold = hold * 3;
            let n = which % 2;
            let disk = &system.disks[n];
            match tokio::task::block_in_place(|| disk.fill()) {
                Ok(bytes) => eprintln!(
                    "chaos:          {} filled with {} MiB for {hold:?}",
                    disk.path.display(),
                    bytes >> 20
                ),
                Err(error) => eprintln!("chaos: the filler could not be written: {error}"),
            }
            tokio::time::sleep(hold).await;
            disk.free();
            NAMES[2 + n]
        }
        FaultKind::ClockJump => {
            let n = which % 2;
            let seconds: i64 =
                [300, 3_600, 4 * 3_600, -600, -3_600, -4 * 3_600][rng.gen_range(0..6)];
            let clock = &system.agents[n].clock_file;
            eprintln!(
                "chaos:          {}'s clock {seconds:+} s for {hold:?}",
                NAMES[2 + n]
            );
            if let Err(error) = std::fs::write(clock, format!("{seconds:+}\n")) {
                eprintln!("chaos: the clock file could not be written: {error}");
            }
            tokio::time::sleep(hold).await;
            // And back: the clock is set right again (as NTP steps it once it syncs).
            let _ = std::fs::write(clock, "+0\n");
            NAMES[2 + n]
        }
        other => unreachable!("{other:?} is not injected here"),
    }
}
