//! CAP 1.2 (placeholder, being written).
