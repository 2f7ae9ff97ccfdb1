//! `chaos`: the whole system as real processes under load, faults on a seeded schedule, then a
//! quiet period and an exact record-by-record check (docs/reliability.md). Run by
//! `scripts/chaos`, which builds the binaries it drives.

mod broker;
mod check;
mod faults;
mod load;
mod process;
mod report;
mod sse;
mod system;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    about = "Whole-system fault suite: everything running, everything failing, exact accounting"
)]
struct Cli {
    /// About two minutes of load and faults (for scripts/test).
    #[arg(long)]
    short: bool,
    /// Minutes of load and faults (default 10; `--short` makes it 1.5).
    #[arg(long)]
    minutes: Option<f64>,
    /// Seed of the fault schedule and the load (printed; pass it again to replay).
    #[arg(long)]
    seed: Option<u64>,
    /// Webhooks per second.
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// Only these faults (repeatable; default all): kill-relay, kill-agent, broker-stop,
    /// broker-kill, pg-stop-fast, pg-stop-immediate, link-cut-broker, link-cut-pg, card-dies.
    #[arg(long = "fault", value_parser = parse_fault)]
    faults: Vec<faults::FaultKind>,
    /// Mean pause between faults, in seconds.
    #[arg(long, default_value_t = 6.0)]
    fault_every: f64,
    /// The `cloud-relay` binary.
    #[arg(long, env = "CHAOS_RELAY_BIN")]
    relay_bin: PathBuf,
    /// The `edge-agent` binary.
    #[arg(long, env = "CHAOS_AGENT_BIN")]
    agent_bin: PathBuf,
}

fn parse_fault(slug: &str) -> Result<faults::FaultKind, String> {
    faults::FaultKind::from_slug(slug).ok_or_else(|| format!("no fault {slug:?}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let seed = cli.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_000)
    });
    let minutes = cli.minutes.unwrap_or(if cli.short { 1.5 } else { 10.0 });
    eprintln!("chaos: seed {seed} ({minutes} min; replay with --seed {seed})");

    let mut system = system::System::start(&cli.relay_bin, &cli.agent_bin)
        .await
        .context("the system starts")?;
    eprintln!("chaos: logs in {}", system.dir.path().display());
    let run_start = Instant::now();

    let stop_tablets = CancellationToken::new();
    let tablets: Vec<sse::SharedTablet> = system
        .agents
        .iter()
        .map(|_| Arc::new(Mutex::new(sse::Tablet::default())))
        .collect();
    let tablet_tasks: Vec<_> = system
        .agents
        .iter()
        .zip(&tablets)
        .map(|(agent, tablet)| {
            tokio::spawn(sse::run(
                agent.base.clone(),
                tablet.clone(),
                stop_tablets.clone(),
            ))
        })
        .collect();

    let record: load::Shared = Arc::default();
    let stop_load = CancellationToken::new();
    let give_up = CancellationToken::new();
    let load_task = tokio::spawn(load::run(
        seed,
        cli.rate,
        system.relays.iter().map(|r| r.url.clone()).collect(),
        system.agents.iter().map(|a| a.base.clone()).collect(),
        record.clone(),
        stop_load.clone(),
        give_up.clone(),
    ));

    let stop_faults = CancellationToken::new();
    let duration = Duration::from_secs_f64(minutes * 60.0);
    let timer = {
        let stop_faults = stop_faults.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            stop_faults.cancel();
        })
    };
    let kinds = if cli.faults.is_empty() {
        faults::FaultKind::ALL.to_vec()
    } else {
        cli.faults.clone()
    };
    let faults = faults::run(
        &system,
        (seed, &kinds),
        run_start,
        Duration::from_secs_f64(cli.fault_every),
        stop_faults,
    )
    .await;
    let _ = timer.await;
    let load_time = run_start.elapsed();
    stop_load.cancel();
    eprintln!("chaos: load stopped; quiet period");

    // Quiet: every webhook still being retried gets through (or is given up after 2 min).
    let give_up_timer = {
        let give_up = give_up.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(120)).await;
            give_up.cancel();
        })
    };
    let _ = load_task.await;
    give_up_timer.abort();
    let cards = check::CardDeaths::of(&faults);
    let settled = report::settle(&system, &record, Duration::from_secs(120), &cards).await;
    // The load has ended: the record is the harness's alone from here.
    let record = std::mem::take(&mut *load::lock(&record));
    let batches = report::batch_counts(&system, &record, &cards).await;
    stop_tablets.cancel();
    for task in tablet_tasks {
        let _ = task.await;
    }
    system.stop_processes().await;

    let tablets: Vec<sse::Tablet> = tablets
        .iter()
        .map(|t| std::mem::take(&mut *sse::lock(t)))
        .collect();
    let mut findings = check::check(&system, &record, &tablets, &cards).await?;
    findings.wrong.extend(batches?);
    if let Err(error) = settled {
        findings.leftovers.push(format!("quiet period: {error}"));
    }
    let clean = findings.clean();
    report::print(seed, load_time, &record, &faults, &tablets, &findings);
    if !clean {
        eprintln!("chaos: FAILED (seed {seed}; replay with --seed {seed})");
        // The directory goes with the system: the logs' last lines go to stderr first.
        for entry in std::fs::read_dir(system.dir.path())?.flatten() {
            if entry.path().extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                eprintln!(
                    "--- {} (last 15 lines)",
                    entry.file_name().to_string_lossy()
                );
                for line in &lines[lines.len().saturating_sub(15)..] {
                    eprintln!("{line}");
                }
            }
        }
        drop(system);
        std::process::exit(1);
    }
    drop(system);
    Ok(())
}
