//! `chaos`: the whole system as real processes under load, faults on a seeded schedule, then a
//! quiet period and an exact record-by-record check (docs/reliability.md). Run by
//! `scripts/chaos`, which builds the binaries it drives.

mod broker;
mod check;
mod check_floor;
mod disk;
mod faults;
mod impair;
mod kills;
mod load;
mod process;
mod report;
mod sse;
mod station;
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
    /// Mean pause between faults, in seconds.
    #[arg(long, default_value_t = 6.0)]
    fault_every: f64,
    /// Only these kinds on the random schedule (repeat the flag; default all). The kill rota
    /// runs whatever this says.
    #[arg(long = "fault", value_enum)]
    faults: Vec<faults::FaultKind>,
    /// The `cloud-relay` binary.
    #[arg(long, env = "CHAOS_RELAY_BIN")]
    relay_bin: PathBuf,
    /// The `edge-agent` binary.
    #[arg(long, env = "CHAOS_AGENT_BIN")]
    agent_bin: PathBuf,
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
        system
            .agents
            .iter()
            .map(|a| (a.base.clone(), a.scanner.master()))
            .collect(),
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
    let (mut faults, kills) = tokio::join!(
        faults::run(
            &system,
            seed,
            run_start,
            Duration::from_secs_f64(cli.fault_every),
            if cli.faults.is_empty() {
                &faults::FaultKind::ALL
            } else {
                &cli.faults
            },
            stop_faults.clone(),
        ),
        kills::run(
            &system,
            seed,
            run_start,
            duration,
            kills::per_process(minutes),
            stop_faults,
        )
    );
    faults.extend(kills);
    faults.sort_by_key(|f| f.start);
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
    let mut record = std::mem::take(&mut *load::lock(&record));
    // The grill scanners' tickets count as bumps, answered as the tablets saw them answered.
    let scan_bumps = {
        let tablets: Vec<_> = tablets.iter().map(sse::lock).collect();
        let scans: Vec<_> = tablets.iter().map(|t| &t.scans).collect();
        check_floor::scans_as_bumps(&record, &scans)
    };
    record.bumps.extend(scan_bumps);
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
