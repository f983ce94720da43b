//! End-to-end tests of Yingji: one binary, a module per area.

mod browser;
mod connection;
mod console;
mod crash;
mod dispatch;
mod drill;
mod forward;
mod hostile;
mod hub;
mod hub_dispatch;
mod ingest;
mod monitoring;
mod placement;
mod retention;
mod stats;
mod store;
mod tls;
