//! `edge-agent`: parse flags, init logging, load config, run until SIGTERM or Ctrl-C (or check
//! the config, or apply a kitchen.toml, and exit).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kitchen_daemon::notify;

#[derive(Parser)]
#[command(version, about = "Kitchen box agent: orders in, station displays out")]
struct Cli {
    /// TOML config file; every key can be overridden from the environment (docs/agent.md).
    #[arg(long, global = true, env = "AGENT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent (the default).
    Run,
    /// Load the configuration as `run` would (file, environment, credentials), check the
    /// reference file, print a summary and exit 0; exit 1 with the reason when invalid.
    CheckConfig {
        /// Do not fail on a refused reference file (the agent runs on its cached copy then).
        #[arg(long)]
        skip_reference: bool,
        /// Do not fail on a refused link (plaintext or unverified TLS off the box, a bad CA
        /// bundle): the agent serves the LAN without it and its displays say why.
        #[arg(long)]
        skip_links: bool,
    },
    /// Pair a device on the console (works while the agent runs): prints its token as the last
    /// word of the last line. The token is shown once; keep it like a password.
    Pair {
        /// display, cook, expo, prep or manager.
        #[arg(long)]
        role: String,
        /// A name the kitchen knows it by, unique among paired devices (at most 64 bytes).
        #[arg(long)]
        name: String,
        /// A cook's station.
        #[arg(long)]
        station: Option<String>,
    },
    /// List every device ever paired, revoked ones included.
    Devices,
    /// Revoke a device: its token stops working at once.
    Revoke {
        /// The device id (`edge-agent devices` lists them).
        id: String,
    },
    /// Staff PINs for 86ing from the displays: once anyone has one, 86 needs a PIN.
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
    /// Apply a kitchen.toml from the boot partition (first-boot provisioning, as root).
    Provision {
        /// The kitchen.toml to apply; nothing happens when it does not exist.
        #[arg(long, default_value = "/boot/firmware/kitchen.toml")]
        from: PathBuf,
        #[command(flatten)]
        credstore: CredStoreArgs,
        /// The directory holding `hostname` and `hosts`.
        #[arg(long, default_value = "/etc")]
        etc: PathBuf,
        /// Where `kitchen.toml`'s `ca_pem` (the CA bundle) is written.
        #[arg(long, default_value = edge_agent::config::DEFAULT_CA_FILE)]
        ca_file: PathBuf,
        /// The time zone database `time_zone` is looked up in.
        #[arg(long, default_value = "/usr/share/zoneinfo")]
        zoneinfo: PathBuf,
    },
    /// Exchange the enrolment token provisioning stored for the kitchen's credentials at the
    /// relay (`enrol_url`), once the network is up (as root). Exit 0: enrolled, or nothing to
    /// do; 2: the relay refused the token (removed, reason recorded); 1: try again later.
    Enrol {
        #[command(flatten)]
        credstore: CredStoreArgs,
    },
}

/// Where the secrets are kept.
#[derive(clap::Args)]
struct CredStoreArgs {
    /// systemd's credential store, where the secrets go as `edge-agent.<key>`.
    #[arg(long, default_value = edge_agent::provision::credstore::ENCRYPTED_DIR)]
    credstore: PathBuf,
    /// Store the secrets as they are (mode 0600) instead of encrypting them with
    /// `systemd-creds` (for machines without it; the units then need `LoadCredential=`).
    #[arg(long)]
    plaintext_credentials: bool,
}

impl CredStoreArgs {
    fn store(self) -> edge_agent::provision::CredStore {
        if self.plaintext_credentials {
            edge_agent::provision::CredStore::Plaintext {
                dir: self.credstore,
            }
        } else {
            edge_agent::provision::CredStore::Encrypted {
                dir: self.credstore,
                program: PathBuf::from("systemd-creds"),
            }
        }
    }
}

#[derive(Subcommand)]
enum StaffCommand {
    /// Give someone a PIN: prints it as the last word of the last line (shown once).
    Add {
        #[arg(long)]
        name: String,
    },
    /// Everyone with a PIN.
    List,
    /// Take someone's PIN away.
    Remove {
        #[arg(long)]
        name: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    kitchen_daemon::logging::init(false);
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig {
            skip_reference,
            skip_links,
        } => {
            let config = edge_agent::Config::load(cli.config.as_deref())?;
            let summary =
                edge_agent::provision::check_config(&config, !skip_reference, !skip_links)
                    .map_err(|reason| anyhow::anyhow!("invalid config: {reason}"))?;
            println!("{summary}");
            Ok(())
        }
        Command::Provision {
            from,
            credstore,
            etc,
            ca_file,
            zoneinfo,
        } => {
            let config_file = cli
                .config
                .unwrap_or_else(|| PathBuf::from("/etc/edge-agent/agent.toml"));
            let provision = edge_agent::provision::Provision {
                source: from,
                config_file,
                credstore: credstore.store(),
                etc,
                ca_file,
                zoneinfo,
            };
            match provision.run().context("provisioning failed")? {
                edge_agent::provision::Outcome::NothingToDo => {
                    println!("no {}: nothing to do", provision.source.display());
                }
                edge_agent::provision::Outcome::Provisioned {
                    kitchen_id,
                    stores,
                    hostname,
                } => println!("provisioned kitchen {kitchen_id} ({stores} stores) as {hostname}"),
            }
            Ok(())
        }
        Command::Enrol { credstore } => {
            let config = edge_agent::Config::load(cli.config.as_deref())?;
            let error_file = config.provision_error_file.clone().unwrap_or_else(|| {
                cli.config
                    .as_deref()
                    .and_then(std::path::Path::parent)
                    .unwrap_or(&config.data_dir)
                    .join("provision-error")
            });
            let enrolment = edge_agent::enrol::Enrolment {
                config,
                store: credstore.store(),
                error_file,
            };
            match enrolment.run().await {
                Ok(edge_agent::enrol::Outcome::NothingToDo) => {
                    println!("no enrolment token: nothing to do");
                    Ok(())
                }
                Ok(edge_agent::enrol::Outcome::Enrolled {
                    kitchen_id,
                    database,
                    mqtt,
                }) => {
                    let mut stored = vec!["broker login"];
                    stored.extend(database.then_some("database login"));
                    stored.extend(mqtt.then_some("MQTT password"));
                    println!(
                        "enrolled kitchen {kitchen_id}: {} stored",
                        stored.join(", ")
                    );
                    Ok(())
                }
                Err(error @ edge_agent::enrol::EnrolError::Refused(_)) => {
                    eprintln!("{error}");
                    std::process::exit(2);
                }
                Err(error) => Err(error.into()),
            }
        }
        Command::Pair {
            role,
            name,
            station,
        } => {
            let config = edge_agent::Config::load(cli.config.as_deref())?;
            let (device, token) =
                edge_agent::pairing::pair(&config.data_dir, &role, &name, station.as_deref())?;
            println!("{}", edge_agent::pairing::describe(&device));
            println!("token: {token}");
            Ok(())
        }
        Command::Devices => {
            let config = edge_agent::Config::load(cli.config.as_deref())?;
            let devices = edge_agent::pairing::devices(&config.data_dir)?;
            if devices.is_empty() {
                println!("no devices paired");
            }
            for device in devices {
                println!("{}", edge_agent::pairing::describe(&device));
            }
            Ok(())
        }
        Command::Revoke { id } => {
            let config = edge_agent::Config::load(cli.config.as_deref())?;
            let device = edge_agent::pairing::revoke(&config.data_dir, &id)?;
            println!("{}", edge_agent::pairing::describe(&device));
            Ok(())
        }
        Command::Staff { command } => {
            let config = edge_agent::Config::load(cli.config.as_deref())?;
            match command {
                StaffCommand::Add { name } => {
                    let pin = edge_agent::pairing::add_staff(&config.data_dir, &name)?;
                    println!("{} may 86 with PIN: {pin}", name.trim());
                }
                StaffCommand::List => {
                    for name in edge_agent::pairing::staff(&config.data_dir)? {
                        println!("{name}");
                    }
                }
                StaffCommand::Remove { name } => {
                    edge_agent::pairing::remove_staff(&config.data_dir, &name)?;
                    println!("{} has no PIN any more", name.trim());
                }
            }
            Ok(())
        }
        Command::Run => run(cli.config).await,
    }
}

async fn run(config_file: Option<PathBuf>) -> anyhow::Result<()> {
    let config = edge_agent::Config::load(config_file.as_deref())?;
    let provisioned = config.provisioned();
    let app = edge_agent::App::build(config).await?;
    let token = app.shutdown_token();
    tokio::spawn(async move {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        notify::stopping();
        token.cancel();
        Ok::<_, std::io::Error>(())
    });
    // The store is open and the listener bound: systemd may count the agent as started.
    notify::ready();
    notify::status(if provisioned {
        "serving"
    } else {
        "serving the LAN only: not provisioned"
    });
    app.run_until_stopped().await
}
