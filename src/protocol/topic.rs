//! The topics of PROTOCOL.md §3: their event kinds, required `data` fields and filterable fields.
//!
//! This is the one place that knows what an event of each topic must carry. The server uses it
//! to judge `publish` messages and subscribe filters; the harness uses it to judge the events a
//! target delivers. It must not know anything about connections or delivery.

use super::data::{ObjectView, raw_str};
use super::timestamp;

/// A topic a client can subscribe to (PROTOCOL.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    Devices,
    Alerts,
    SystemStatus,
}

/// How a `data` field of an event is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldRule {
    /// Any JSON string.
    AnyString,
    /// A string from a fixed set.
    OneOf(&'static [&'static str]),
    /// An RFC 3339 timestamp string.
    Timestamp,
    /// An object whose named members are numbers in 0–100.
    Percentages(&'static [&'static str]),
}

/// A required field of a topic's event `data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: &'static str,
    pub rule: FieldRule,
    pub filterable: bool,
}

pub const DEVICE_STATUSES: &[&str] = &["online", "offline", "maintenance"];
pub const SEVERITIES: &[&str] = &["critical", "high", "medium", "low"];
pub const SYSTEM_STATUSES: &[&str] = &["healthy", "degraded", "down"];

const DEVICE_FIELDS: &[FieldSpec] = &[
    FieldSpec { name: "id", rule: FieldRule::AnyString, filterable: true },
    FieldSpec { name: "status", rule: FieldRule::OneOf(DEVICE_STATUSES), filterable: true },
    FieldSpec { name: "last_seen", rule: FieldRule::Timestamp, filterable: false },
];

const ALERT_FIELDS: &[FieldSpec] = &[
    FieldSpec { name: "id", rule: FieldRule::AnyString, filterable: false },
    FieldSpec { name: "title", rule: FieldRule::AnyString, filterable: false },
    FieldSpec { name: "severity", rule: FieldRule::OneOf(SEVERITIES), filterable: true },
    FieldSpec { name: "device_id", rule: FieldRule::AnyString, filterable: true },
];

const SYSTEM_STATUS_FIELDS: &[FieldSpec] = &[
    FieldSpec { name: "status", rule: FieldRule::OneOf(SYSTEM_STATUSES), filterable: true },
    FieldSpec {
        name: "metrics",
        rule: FieldRule::Percentages(&["cpu_usage", "memory_usage"]),
        filterable: false,
    },
];

/// Why an event's `data` does not satisfy its topic (PROTOCOL.md §3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("`data` must be a JSON object")]
    NotAnObject,
    #[error("`data.{0}` is required")]
    Missing(&'static str),
    #[error("`data.{field}` must be {expected}")]
    Invalid { field: &'static str, expected: String },
}

impl Topic {
    pub const ALL: [Topic; 3] = [Topic::Devices, Topic::Alerts, Topic::SystemStatus];

    /// The topic named `name`, if it is one of §3.
    pub fn from_name(name: &str) -> Option<Topic> {
        match name {
            "devices" => Some(Topic::Devices),
            "alerts" => Some(Topic::Alerts),
            "system_status" => Some(Topic::SystemStatus),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Topic::Devices => "devices",
            Topic::Alerts => "alerts",
            Topic::SystemStatus => "system_status",
        }
    }

    /// The one event kind this topic carries.
    pub fn event_kind(self) -> &'static str {
        match self {
            Topic::Devices => "device_update",
            Topic::Alerts => "alert_created",
            Topic::SystemStatus => "system_status",
        }
    }

    /// A dense index, for per-topic tables.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn fields(self) -> &'static [FieldSpec] {
        match self {
            Topic::Devices => DEVICE_FIELDS,
            Topic::Alerts => ALERT_FIELDS,
            Topic::SystemStatus => SYSTEM_STATUS_FIELDS,
        }
    }

    /// The rule of a filterable field of this topic, if `key` is one.
    pub fn filterable_field(self, key: &str) -> Option<FieldRule> {
        self.fields().iter().find(|f| f.filterable && f.name == key).map(|f| f.rule)
    }

    /// Checks that `data` carries this topic's required fields with valid values.
    /// Fields beyond the required ones are allowed and never inspected.
    pub fn validate_data(self, data: &ObjectView<'_>) -> Result<(), DataError> {
        self.fields().iter().try_for_each(|spec| check_field(data, spec))
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn check_field(data: &ObjectView<'_>, spec: &FieldSpec) -> Result<(), DataError> {
    let value = data.get(spec.name).ok_or(DataError::Missing(spec.name))?;
    let invalid = |expected: String| DataError::Invalid { field: spec.name, expected };
    match spec.rule {
        FieldRule::AnyString => raw_str(value).map(drop).ok_or_else(|| invalid("a string".into())),
        FieldRule::OneOf(set) => match raw_str(value) {
            Some(s) if set.contains(&&*s) => Ok(()),
            _ => Err(invalid(format!("one of {}", set.join(", ")))),
        },
        FieldRule::Timestamp => match raw_str(value) {
            Some(s) if timestamp::is_rfc3339(&s) => Ok(()),
            _ => Err(invalid("an RFC 3339 timestamp string".into())),
        },
        FieldRule::Percentages(members) => {
            let inner = ObjectView::parse(value.get()).map_err(|_| invalid("an object".into()))?;
            for member in members {
                match inner.get_f64(member) {
                    Some(n) if (0.0..=100.0).contains(&n) => {}
                    _ => {
                        return Err(invalid(format!("an object whose `{member}` is a number 0-100")));
                    }
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn validate(topic: Topic, data: Value) -> Result<(), DataError> {
        let text = data.to_string();
        match ObjectView::parse(&text) {
            Ok(view) => topic.validate_data(&view),
            Err(_) => Err(DataError::NotAnObject),
        }
    }

    #[test]
    fn every_topic_round_trips_through_its_name() {
        for topic in Topic::ALL {
            assert_eq!(Topic::from_name(topic.name()), Some(topic));
        }
        assert_eq!(Topic::from_name("Devices"), None);
    }

    #[test]
    fn valid_data_of_each_topic_is_accepted() {
        let device = json!({"id": "d-1", "status": "online", "last_seen": "2024-03-20T10:00:00Z"});
        let alert = json!({"id": "a", "title": "t", "severity": "low", "device_id": "d"});
        let status = json!({"status": "down", "metrics": {"cpu_usage": 0, "memory_usage": 100.0}});
        assert_eq!(validate(Topic::Devices, device.clone()), Ok(()));
        assert_eq!(validate(Topic::Alerts, alert.clone()), Ok(()));
        assert_eq!(validate(Topic::SystemStatus, status.clone()), Ok(()));
    }

    #[test]
    fn missing_or_invalid_fields_are_named() {
        let alert = json!({"id": "a", "title": "t", "severity": "urgent", "device_id": "d"});
        assert!(matches!(
            validate(Topic::Alerts, alert.clone()),
            Err(DataError::Invalid { field: "severity", .. })
        ));
        let device = json!({"id": "d-1", "status": "online"});
        assert_eq!(validate(Topic::Devices, device.clone()), Err(DataError::Missing("last_seen")));
        let status = json!({"status": "healthy", "metrics": {"cpu_usage": 101, "memory_usage": 1}});
        assert!(validate(Topic::SystemStatus, status.clone()).is_err());
        assert_eq!(validate(Topic::Alerts, json!([1])), Err(DataError::NotAnObject));
    }

    #[test]
    fn filterable_fields_follow_the_table() {
        assert!(Topic::Devices.filterable_field("id").is_some());
        assert!(Topic::Alerts.filterable_field("id").is_none());
        assert!(Topic::Alerts.filterable_field("device_id").is_some());
        assert!(Topic::SystemStatus.filterable_field("metrics").is_none());
    }
}
