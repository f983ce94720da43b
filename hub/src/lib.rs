//! The Yingji hub: takes in the nodes' summarized events, keeps the national picture, judges
//! risk by operator-written rules and publishes CAP 1.2 warnings.

pub mod cap;
pub mod rules;
