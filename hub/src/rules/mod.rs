//! Risk rules (placeholder, being written).
