//! `cloud-relay`: parse flags, load config, run (or check the config, or migrate) and exit.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cloud_relay::{App, Config, db, telemetry};

#[derive(Parser)]
#[command(
    version,
    about = "Receives Otter webhooks and fans orders out to kitchens"
)]
struct Cli {
    /// TOML config file; every key can be overridden from the environment (docs/relay.md).
    #[arg(long, global = true, env = "RELAY_CONFIG")]
    config: Option<PathBuf>,
    /// Accept webhooks without checking their signature. Local experiments only.
    #[arg(long, global = true)]
    insecure_skip_signature: bool,
    /// Log one JSON object per line instead of text.
    #[arg(long, global = true, env = "RELAY_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay (the default).
    Run,
    /// Validate the configuration and exit (0 when valid).
    CheckConfig,
    /// Apply the database migrations and exit.
    Migrate,
}

fn load(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = Config::load_unvalidated(cli.config.as_deref())?;
    config.insecure_skip_signature |= cli.insecure_skip_signature;
    config.validate()?;
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(cli.log_json);
    let config = load(&cli)?;
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => {
            println!("config ok (listen {})", config.listen);
            Ok(())
        }
        Command::Migrate => {
            let pool = db::pool(&config.database_url, 1, config.database_timeout)?;
            db::MIGRATOR.run(&pool).await.context("migrations failed")?;
            println!("migrations applied");
            Ok(())
        }
        Command::Run => {
            let app = App::build(config).await?;
            let token = app.shutdown_token();
            tokio::spawn(async move {
                shutdown_signal().await;
                kitchen_daemon::notify::stopping();
                token.cancel();
            });
            // Migrated, connected and listening: systemd may start what is ordered after us.
            kitchen_daemon::notify::ready();
            app.run_until_stopped().await
        }
    }
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
