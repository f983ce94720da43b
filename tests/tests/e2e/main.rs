//! End-to-end tests of Yingji: one binary, a module per area.

mod crash;
mod hostile;
mod ingest;
mod store;
