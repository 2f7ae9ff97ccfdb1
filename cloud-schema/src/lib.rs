//! The queries of the cloud PostgreSQL's `kitchen` schema (docs/sync.md) that both sides run:
//! the relay as the schema's owner, seeing every kitchen, and a kitchen box as its own role,
//! confined by row-level security to the kitchen it names with [`set_tenant`]. The schema
//! itself is the relay's migration (`cloud-relay/migrations`); what only one side does (the
//! relay's provisioning and import, the box's pushes) stays with that side. `connect` is how
//! both reach it: the URL checked against the TLS rule (verify-full off the box).

pub mod connect;
pub mod reference;
mod tenant;

pub use reference::{LoadError, load_reference, reference_version};
pub use tenant::{TENANT_SETTING, set_tenant};
