//! `edge-agent`: parse flags, init logging, run until SIGTERM or Ctrl-C.

use std::net::SocketAddr;

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "Kitchen box agent: orders in, station displays out")]
struct Cli {
    /// Address of the LAN HTTP server.
    #[arg(long, env = "AGENT_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
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
        .init();
    let app = edge_agent::App::build(cli.listen).await?;
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
