//! Faults on a seeded schedule, one at a time: a pause, a fault, its duration, the repair, and
//! the time until every process answers `/readyz` again (the recovery time).

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio_util::sync::CancellationToken;

use crate::system::System;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum FaultKind {
    KillRelay,
    KillAgent,
    BrokerStop,
    BrokerKill,
    PgStopFast,
    PgStopImmediate,
    LinkCutBroker,
    LinkCutPg,
    // Injected by `impair.rs`.
    LatencyBroker,
    LatencyPg,
    LossBroker,
    LossPg,
    DiskFull,
    ClockJump,
    /// The box's SD card dies: the agent SIGKILLed, its data directory emptied, the agent
    /// started again as the same kitchen on the empty one (a new card; docs/reliability.md).
    CardDies,
}

impl FaultKind {
    pub const ALL: [Self; 15] = [
        Self::KillRelay,
        Self::KillAgent,
        Self::BrokerStop,
        Self::BrokerKill,
        Self::PgStopFast,
        Self::PgStopImmediate,
        Self::LinkCutBroker,
        Self::LinkCutPg,
        Self::LatencyBroker,
        Self::LatencyPg,
        Self::LossBroker,
        Self::LossPg,
        Self::DiskFull,
        Self::ClockJump,
        Self::CardDies,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::KillRelay => "SIGKILL relay",
            Self::KillAgent => "SIGKILL agent",
            Self::BrokerStop => "RabbitMQ stop (rabbitmqctl)",
            Self::BrokerKill => "RabbitMQ SIGKILL",
            Self::PgStopFast => "PostgreSQL stop -m fast",
            Self::PgStopImmediate => "PostgreSQL stop -m immediate",
            Self::LinkCutBroker => "link cut to RabbitMQ",
            Self::LinkCutPg => "link cut to PostgreSQL",
            Self::LatencyBroker => "latency on a link to RabbitMQ",
            Self::LatencyPg => "latency on a link to PostgreSQL",
            Self::LossBroker => "loss on a link to RabbitMQ",
            Self::LossPg => "loss on a link to PostgreSQL",
            Self::DiskFull => "agent's data disk full",
            Self::ClockJump => "clock jump at an agent",
            Self::CardDies => "card dies (SIGKILL agent, data lost)",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub kind: FaultKind,
    /// The process it hit (`relay1`, `agent-k2`, ...), or `all`.
    pub target: String,
    pub start: Instant,
    pub repaired: Instant,
    /// When every process was ready again; `None` if not within a minute.
    pub recovered: Option<Instant>,
}

pub const NAMES: [&str; 4] = ["relay1", "relay2", "agent-k1", "agent-k2"];

/// Injects faults of `kinds` until `stop`; pauses of `pause` (± half) between them.
pub async fn run(
    system: &System,
    seed: u64,
    run_start: Instant,
    pause: Duration,
    kinds: &[FaultKind],
    stop: CancellationToken,
) -> Vec<Fault> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut faults = Vec::new();
    loop {
        let wait = pause.mul_f64(rng.gen_range(0.5..1.5));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return faults,
        }
        let kind = kinds[rng.gen_range(0..kinds.len())];
        let hold = Duration::from_millis(rng.gen_range(1_000..6_000));
        let which = rng.gen_range(0..4);
        let start = Instant::now();
        let target = match kind {
            FaultKind::KillRelay => {
                let n = which % 2;
                if let Some(process) = &system.relays[n].process {
                    process.kill();
                }
                NAMES[n]
            }
            FaultKind::KillAgent => {
                let n = which % 2;
                if let Some(process) = &system.agents[n].process {
                    process.kill();
                }
                NAMES[2 + n]
            }
            FaultKind::BrokerStop | FaultKind::BrokerKill => {
                // rabbitmqctl and the node's start block (seconds): off the runtime's worker.
                tokio::task::block_in_place(|| {
                    if kind == FaultKind::BrokerStop {
                        system.broker.stop();
                    } else {
                        system.broker.kill();
                    }
                });
                tokio::time::sleep(hold).await;
                if let Err(error) = tokio::task::block_in_place(|| system.broker.up()) {
                    eprintln!("chaos: rabbitmq does not start again: {error:#}");
                }
                "all"
            }
            FaultKind::PgStopFast | FaultKind::PgStopImmediate => {
                let mode = if kind == FaultKind::PgStopFast {
                    "fast"
                } else {
                    "immediate"
                };
                // pg_ctl blocks (seconds): off the runtime's worker.
                tokio::task::block_in_place(|| system.pg.stop(mode));
                tokio::time::sleep(hold).await;
                tokio::task::block_in_place(|| system.pg.restart());
                "all"
            }
            FaultKind::LinkCutBroker | FaultKind::LinkCutPg => {
                let links = if kind == FaultKind::LinkCutBroker {
                    &system.broker_links
                } else {
                    &system.pg_links
                };
                links[which].cut();
                tokio::time::sleep(hold).await;
                links[which].restore();
                NAMES[which]
            }
            FaultKind::CardDies => {
                let n = which % 2;
                let agent = &system.agents[n];
                if let Some(process) = &agent.process {
                    // After a random-schedule or rota kill there is no process until the
                    // supervisor's restart: wait for it, so the card dies now, not later.
                    let flash = || {
                        let (data_dir, reference) =
                            (agent.data_dir.clone(), agent.reference.clone());
                        move || {
                            if let Err(error) = crate::system::flash(&data_dir, &reference) {
                                eprintln!("chaos: a new card at {}: {error:#}", data_dir.display());
                            }
                        }
                    };
                    while !process.kill_then(flash()) && start.elapsed() < Duration::from_secs(10) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                NAMES[2 + n]
            }
            _ => crate::impair::inject(system, kind, which, &mut rng).await,
        };
        let repaired = Instant::now();
        eprintln!(
            "chaos: t+{:>4}s {} ({target}), {:.1} s",
            start.duration_since(run_start).as_secs(),
            kind.name(),
            (repaired - start).as_secs_f64()
        );
        let recovered = recovery(system, kind, repaired).await;
        faults.push(Fault {
            kind,
            target: target.to_owned(),
            start,
            repaired,
            recovered,
        });
    }
}

/// When every process answers `/readyz` 200 again after `kind` was repaired at `repaired`
/// (`None` if not within a minute); says which process was last.
pub async fn recovery(system: &System, kind: FaultKind, repaired: Instant) -> Option<Instant> {
    tokio::time::sleep(Duration::from_millis(100)).await;
    let deadline = repaired + Duration::from_secs(60);
    let mut last_waiting = String::new();
    let recovered = loop {
        match system.not_ready().await {
            None => break Some(Instant::now()),
            Some(name) => last_waiting = name,
        }
        if Instant::now() > deadline {
            eprintln!(
                "chaos: {last_waiting} not ready a minute after {}",
                kind.name()
            );
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if let Some(at) = recovered
        && !last_waiting.is_empty()
    {
        eprintln!(
            "chaos:          ready {:.1} s after the repair; {last_waiting} was last",
            (at - repaired).as_secs_f64()
        );
    }
    recovered
}
