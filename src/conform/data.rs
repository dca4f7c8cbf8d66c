//! The event `data` the conformance cases publish: valid per §3, carrying the case's marker and
//! a sequence number so a case can tell its own events from anyone else's.

use serde_json::{Value, json};

/// A valid alert carrying the case's marker and a sequence number.
pub fn alert(marker: &str, seq: u64, severity: &str) -> Value {
    json!({"id": format!("a-{seq}"), "title": "conform", "severity": severity, "device_id": marker, "marker": marker, "seq": seq})
}
