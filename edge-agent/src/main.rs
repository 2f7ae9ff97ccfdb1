//! `edge-agent`: parse flags, init logging, load config, run until SIGTERM or Ctrl-C.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "Kitchen box agent: orders in, station displays out")]
struct Cli {
    /// TOML config file; every key can be overridden from the environment (docs/agent.md).
    #[arg(long, env = "AGENT_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = edge_agent::Config::load(cli.config.as_deref())?;
    let app = edge_agent::App::build(config).await?;
    let token = app.shutdown_token();
    tokio::spawn(async move {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        token.cancel();
        Ok::<_, std::io::Error>(())
    });
    app.run_until_stopped().await
}
