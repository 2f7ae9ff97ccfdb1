//! `edge-agent`: parse flags, init logging, run until SIGTERM / Ctrl-C.

use std::net::SocketAddr;

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "Kitchen box agent: orders in, station displays out")]
struct Cli {
    /// Address of the LAN HTTP server.
    #[arg(long, env = "EDGE_LISTEN", default_value = "0.0.0.0:8002")]
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
        let _ = tokio::signal::ctrl_c().await;
        token.cancel();
    });
    app.run_until_stopped().await
}
