//! Integration tests of the relay against the real PostgreSQL and RabbitMQ: each test gets its
//! own database and its own exchanges and queues, and removes them when it ends.

mod box_limits;
mod broker_access;
mod delivery;
mod doors;
mod enrol;
mod fleet;
mod fleet_tls;
mod harness;
mod ingest;
mod kitchens;
mod otter_calls;
mod otter_menu;
mod otter_rig;
mod outage;
mod recovery;
mod reports;
mod sync_security;
mod webhook;
