//! `cloud-relay`: parse flags, load config, run (or check the config, migrate, provision a
//! kitchen, import or export a kitchen's reference data, manage fleet operators, send a box a
//! command) and exit.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use cloud_relay::{
    App, Config, db, fleet,
    kitchens::{
        self,
        broker::{self, Broker},
    },
    telemetry,
};
use kitchen_proto::reference::Reference;

#[derive(Parser)]
#[command(
    version,
    about = "Receives Otter webhooks and fans orders out to kitchens"
)]
struct Cli {
    /// TOML config file; every key can be overridden from the environment (docs/relay.md).
    #[arg(long, global = true, env = "RELAY_CONFIG")]
    config: Option<PathBuf>,
    /// Accept webhooks without checking their signature. Local experiments only: refused
    /// unless the public listener is a loopback address.
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
    /// Kitchens, the database roles and broker users their boxes log in as (docs/sync.md,
    /// docs/relay.md).
    Kitchen {
        #[command(subcommand)]
        command: KitchenCommand,
    },
    /// A kitchen's reference data in PostgreSQL (docs/sync.md).
    Reference {
        #[command(subcommand)]
        command: ReferenceCommand,
    },
    /// Operators of the fleet page (docs/fleet.md).
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// The fleet channel: commands to kitchen boxes over MQTT (docs/fleet.md).
    Fleet {
        #[command(subcommand)]
        command: FleetCommand,
    },
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Add an operator and print its token (once: only its SHA-256 is kept).
    Add {
        #[arg(long)]
        name: String,
    },
    /// List the operators.
    List,
    /// Remove an operator (its token stops working at once).
    Remove {
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum FleetCommand {
    /// Send a box a command (ping, reference, reconcile, sync, diagnostics) and print its reply.
    Command {
        #[arg(long)]
        kitchen: String,
        /// Seconds to wait for the reply; exits non-zero without one.
        #[arg(long, default_value_t = 10)]
        wait: u64,
        name: String,
    },
}

#[derive(Subcommand)]
enum KitchenCommand {
    /// Add a kitchen and the login role its box uses (created if missing, member of
    /// kitchen_agent); with [broker_admin] also its queue, bindings and broker user. Running it
    /// again changes nothing but the database password, and repairs the broker side.
    Add {
        #[arg(long)]
        kitchen: String,
        #[arg(long)]
        role: String,
        /// File holding the role's password, one line. Passwords are never taken on the
        /// command line.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Mosquitto password file: also make the kitchen's MQTT password and write its hash
        /// there (reload Mosquitto afterwards).
        #[arg(long)]
        mqtt_password_file: Option<PathBuf>,
    },
    /// Give the kitchen's box a new broker password (its open connections are closed) and
    /// print its new `amqp_url`.
    Rotate {
        #[arg(long)]
        kitchen: String,
    },
    /// Delete the kitchen box's broker user (closing its connections). The queue stays, with
    /// any orders in it, unless --delete-queue.
    Remove {
        #[arg(long)]
        kitchen: String,
        /// Also delete the kitchen's queue with its messages, its dead-letter queue and exchange.
        #[arg(long)]
        delete_queue: bool,
    },
    /// Make a one-time enrolment token for a new box of the kitchen (its kitchen.toml's
    /// `enrol_token`; only its SHA-256 is kept). It works once, until it expires; a newer token
    /// replaces an unused older one. The box exchanges it at `POST /enrol` for new credentials,
    /// which revokes those of the kitchen's previous box.
    EnrolToken {
        #[arg(long)]
        kitchen: String,
        /// Hours the token stays valid (default `[enrol] token_valid_hours`, 24).
        #[arg(long)]
        valid_hours: Option<u32>,
    },
}

#[derive(Subcommand)]
enum ReferenceCommand {
    /// Replace the kitchen's reference data with a reference file (refused when invalid) and
    /// bump its version.
    Import {
        #[arg(long)]
        kitchen: String,
        file: PathBuf,
    },
    /// Print the kitchen's reference data as a reference file.
    Export {
        #[arg(long)]
        kitchen: String,
    },
}

const NO_BROKER_ADMIN: &str = "broker: left alone ([broker_admin] url / RABBITMQ_ADMIN_URL is \
     not set): the kitchen's queue, bindings and broker user were not made or changed";

/// The broker as `[broker_admin]` says, for the subcommands that need it.
fn broker_admin(cli: &Cli) -> anyhow::Result<Broker> {
    let config = Config::load_unvalidated(cli.config.as_deref())?;
    Broker::from_config(&config)?.context(
        "[broker_admin] url (RABBITMQ_ADMIN_URL) is not set: this needs RabbitMQ's management API",
    )
}

fn load(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = Config::load_unvalidated(cli.config.as_deref())?;
    config.insecure_skip_signature |= cli.insecure_skip_signature;
    config.validate()?;
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    telemetry::init(cli.log_json);
    let command = cli.command.take().unwrap_or(Command::Run);
    let admin_pool = || -> anyhow::Result<sqlx::PgPool> {
        // Database work only: the webhook secret is not needed.
        let config = Config::load_unvalidated(cli.config.as_deref())?;
        config.check_database_link()?;
        let ca_pem = config.ca_pem()?;
        Ok(db::pool(
            &config.database_url,
            ca_pem.as_deref(),
            1,
            config.database_timeout,
        )?)
    };
    match command {
        Command::CheckConfig => {
            let config = load(&cli)?;
            println!(
                "config ok (listen {}, admin {})",
                config.listen, config.admin_listen
            );
            Ok(())
        }
        Command::Migrate => {
            db::MIGRATOR
                .run(&admin_pool()?)
                .await
                .context("migrations failed")?;
            println!("migrations applied");
            Ok(())
        }
        Command::Kitchen {
            command:
                KitchenCommand::Add {
                    kitchen,
                    role,
                    password_file,
                    mqtt_password_file,
                },
        } => {
            let password = password_file
                .as_deref()
                .map(kitchens::read_password_file)
                .transpose()?;
            let pool = admin_pool()?;
            let provisioned =
                kitchens::add_kitchen(&pool, &kitchen, &role, password.as_ref()).await?;
            println!("{provisioned}");
            let config = Config::load_unvalidated(cli.config.as_deref())?;
            match Broker::from_config(&config)? {
                Some(broker) => {
                    let stores = broker::kitchen_stores(&pool, &kitchen).await?;
                    let done = broker.provision(&kitchen, &stores).await.context(
                        "the kitchen was added in postgresql; its broker side failed (run this \
                         again)",
                    )?;
                    println!("{done}");
                }
                None => println!("{NO_BROKER_ADMIN}"),
            }
            if let Some(file) = mqtt_password_file {
                println!(
                    "{}",
                    fleet::cli::add_mqtt_login(&file, &kitchen, config.mqtt.url)?
                );
            }
            Ok(())
        }
        Command::Kitchen {
            command: KitchenCommand::Rotate { kitchen },
        } => {
            let (login, closed) = broker_admin(&cli)?.rotate(&kitchen).await?;
            println!(
                "broker user {:?}: new password set, {closed} open connection(s) closed\n{login}",
                login.user
            );
            Ok(())
        }
        Command::Kitchen {
            command:
                KitchenCommand::Remove {
                    kitchen,
                    delete_queue,
                },
        } => {
            let removed = broker_admin(&cli)?.remove(&kitchen, delete_queue).await?;
            println!("{removed}");
            Ok(())
        }
        Command::Kitchen {
            command:
                KitchenCommand::EnrolToken {
                    kitchen,
                    valid_hours,
                },
        } => {
            let config = Config::load_unvalidated(cli.config.as_deref())?;
            let hours = valid_hours.unwrap_or(config.enrol.token_valid_hours);
            if hours == 0 || hours > cloud_relay::config::MAX_TOKEN_VALID_HOURS {
                anyhow::bail!(
                    "--valid-hours must be 1..={}",
                    cloud_relay::config::MAX_TOKEN_VALID_HOURS
                );
            }
            let token = kitchens::enrol::make_token(&admin_pool()?, &kitchen, hours).await?;
            println!("{token}");
            Ok(())
        }
        Command::Operator { command } => {
            let pool = admin_pool()?;
            match command {
                OperatorCommand::Add { name } => {
                    let token = fleet::operators::add(&pool, &name).await?;
                    println!("operator {name:?} added; its token (shown only now):\n{token}");
                }
                OperatorCommand::List => {
                    for operator in fleet::operators::list(&pool).await? {
                        println!("{}\t{}", operator.name, operator.created_at.to_rfc3339());
                    }
                }
                OperatorCommand::Remove { name } => {
                    fleet::operators::remove(&pool, &name).await?;
                    println!("operator {name:?} removed");
                }
            }
            Ok(())
        }
        Command::Fleet {
            command:
                FleetCommand::Command {
                    kitchen,
                    wait,
                    name,
                },
        } => {
            let config = Config::load_unvalidated(cli.config.as_deref())?;
            let wait = Duration::from_secs(wait);
            let (id, reply) =
                fleet::cli::command(&admin_pool()?, &config.mqtt, &kitchen, &name, wait).await?;
            match reply {
                Some(reply) => {
                    println!("{reply}");
                    Ok(())
                }
                None => anyhow::bail!(
                    "command {id} sent to {kitchen:?}; no reply within {} s",
                    wait.as_secs()
                ),
            }
        }
        Command::Reference {
            command: ReferenceCommand::Import { kitchen, file },
        } => {
            let reference = Reference::load(&file)
                .with_context(|| format!("refusing {}; nothing changed", file.display()))?;
            let pool = admin_pool()?;
            let version = kitchens::import_reference(&pool, &kitchen, &reference)
                .await
                .with_context(|| format!("cannot import {}; nothing changed", file.display()))?;
            println!(
                "kitchen {kitchen:?}: reference version {version} imported from {} \
                 (stations: {}, stores: {}, items: {}, day parts: {})",
                file.display(),
                reference.stations.len(),
                reference.stores.len(),
                reference.items.len(),
                reference.day_parts.len()
            );
            let config = Config::load_unvalidated(cli.config.as_deref())?;
            // The queue's bindings follow the kitchen's stores, from what PostgreSQL now says.
            match Broker::from_config(&config)? {
                Some(broker) => {
                    let stores = broker::kitchen_stores(&pool, &kitchen).await?;
                    let rebound = broker.rebind(&kitchen, &stores).await.context(
                        "the reference was imported; the kitchen's queue was not rebound to its \
                         stores (run the import again)",
                    )?;
                    println!("{rebound}");
                }
                None => println!("{NO_BROKER_ADMIN}"),
            }
            if let Some(note) = fleet::cli::announce_reference(&pool, &config.mqtt, &kitchen).await
            {
                println!("{note}");
            }
            Ok(())
        }
        Command::Reference {
            command: ReferenceCommand::Export { kitchen },
        } => match kitchens::export_reference(&admin_pool()?, &kitchen).await? {
            Some((reference, version)) => {
                print!(
                    "# kitchen {kitchen:?}, reference version {version}\n{}",
                    reference.to_toml()?
                );
                Ok(())
            }
            None => anyhow::bail!(
                "kitchen {kitchen:?} has no reference yet (cloud-relay reference import)"
            ),
        },
        Command::Run => {
            let config = load(&cli)?;
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
