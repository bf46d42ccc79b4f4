//! EventValidator rules: required fields, then field
//! types, then data size; the first failure wins.
//!
//! Event fields arrive already classified (`Field`), so the NIF never
//! converts a caller's whole term; `data` is represented only by its external
//! term size, measured by `:erlang.external_size/1` in Elixir.

/// Largest accepted external term size of `event.data`, in bytes.
pub const MAX_DATA_SIZE: u64 = 1_000_000;

/// Event types `validate_event_type/1` accepts, in contract order.
pub const ALLOWED_EVENT_TYPES: [&str; 22] = [
    "function_entry",
    "function_exit",
    "state_change",
    "message_send",
    "message_receive",
    "spawn",
    "exit",
    "link",
    "unlink",
    "monitor",
    "demonitor",
    "system_event",
    "custom_event",
    "config_updated",
    "config_reset",
    "test",
    "test1",
    "test2",
    "test3",
    "default",
    "type_a",
    "type_b",
];

/// What kind of term an event field holds: all the rules need to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `nil`.
    Nil,
    /// `false` (falsy, so type checks skip it).
    False,
    /// An integer > 0 (any size).
    PosInt,
    /// An integer <= 0.
    NonPosInt,
    /// Any atom except `nil` and `false`.
    Atom,
    /// A binary.
    Binary,
    /// A pid.
    Pid,
    /// A `%DateTime{}` struct.
    DateTime,
    /// Anything else.
    Other,
}

impl Field {
    fn truthy(self) -> bool {
        !matches!(self, Field::Nil | Field::False)
    }

    fn is_int(self) -> bool {
        matches!(self, Field::PosInt | Field::NonPosInt)
    }
}

/// The classified fields of an `%Event{}` (data is validated by size only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventFields {
    /// `event_id`
    pub event_id: Field,
    /// `event_type`
    pub event_type: Field,
    /// `timestamp`
    pub timestamp: Field,
    /// `wall_time`
    pub wall_time: Field,
    /// `node`
    pub node: Field,
    /// `pid`
    pub pid: Field,
    /// `correlation_id`
    pub correlation_id: Field,
    /// `parent_id`
    pub parent_id: Field,
}

/// One broken event rule; `Display` is the exact contract message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EventRule {
    /// event_id is nil.
    #[error("Event ID cannot be nil")]
    IdNil,
    /// event_type is nil.
    #[error("Event type cannot be nil")]
    TypeNil,
    /// timestamp is nil.
    #[error("Timestamp cannot be nil")]
    TimestampNil,
    /// event_id is not a positive integer.
    #[error("Event ID must be a positive integer")]
    IdType,
    /// event_type is not an atom (also `validate_event_type/1` on a non-atom).
    #[error("Event type must be an atom")]
    TypeType,
    /// timestamp is not an integer.
    #[error("Timestamp must be an integer")]
    TimestampType,
    /// wall_time is not a DateTime.
    #[error("Wall time must be a DateTime")]
    WallTimeType,
    /// node is not an atom.
    #[error("Node must be an atom")]
    NodeType,
    /// pid is not a pid.
    #[error("PID must be a process identifier")]
    PidType,
    /// correlation_id is not a binary.
    #[error("Correlation ID must be a string")]
    CorrelationType,
    /// parent_id is not a positive integer.
    #[error("Parent ID must be a positive integer")]
    ParentType,
    /// data larger than `MAX_DATA_SIZE` (context: size, max_size).
    #[error("Event data too large")]
    DataTooLarge,
    /// event type not in `ALLOWED_EVENT_TYPES` (context: event_type, allowed_types).
    #[error("Invalid event type")]
    InvalidType,
}

/// The error type (and code) a broken event rule reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `:validation_failed`, 2001.
    ValidationFailed,
    /// `:type_mismatch`, 2002.
    TypeMismatch,
    /// `:data_too_large`, 2003.
    DataTooLarge,
    /// `:invalid_event_type`, 2004.
    InvalidEventType,
}

impl EventRule {
    /// The error type this rule reports.
    pub fn kind(self) -> EventKind {
        match self {
            EventRule::IdNil | EventRule::TypeNil | EventRule::TimestampNil => {
                EventKind::ValidationFailed
            }
            EventRule::DataTooLarge => EventKind::DataTooLarge,
            EventRule::InvalidType => EventKind::InvalidEventType,
            _ => EventKind::TypeMismatch,
        }
    }
}

type Check = Result<(), EventRule>;

fn require(ok: bool, rule: EventRule) -> Check {
    if ok {
        Ok(())
    } else {
        Err(rule)
    }
}

/// `validate_required_fields/1`: id, type, timestamp must not be nil.
pub fn validate_required(f: &EventFields) -> Check {
    require(f.event_id != Field::Nil, EventRule::IdNil)?;
    require(f.event_type != Field::Nil, EventRule::TypeNil)?;
    require(f.timestamp != Field::Nil, EventRule::TimestampNil)
}

/// `validate_field_types/1`: each field is checked only when truthy.
pub fn validate_types(f: &EventFields) -> Check {
    let checks = [
        (f.event_id, f.event_id == Field::PosInt, EventRule::IdType),
        (
            f.event_type,
            f.event_type == Field::Atom,
            EventRule::TypeType,
        ),
        (f.timestamp, f.timestamp.is_int(), EventRule::TimestampType),
        (
            f.wall_time,
            f.wall_time == Field::DateTime,
            EventRule::WallTimeType,
        ),
        (f.node, f.node == Field::Atom, EventRule::NodeType),
        (f.pid, f.pid == Field::Pid, EventRule::PidType),
        (
            f.correlation_id,
            f.correlation_id == Field::Binary,
            EventRule::CorrelationType,
        ),
        (
            f.parent_id,
            f.parent_id == Field::PosInt,
            EventRule::ParentType,
        ),
    ];
    for (field, ok, rule) in checks {
        require(!field.truthy() || ok, rule)?;
    }
    Ok(())
}

/// `validate_data_size/1`: the data's external size must not exceed the limit.
pub fn validate_data_size(size: u64) -> Check {
    require(size <= MAX_DATA_SIZE, EventRule::DataTooLarge)
}

/// `validate/1`: required -> types -> size.
pub fn validate_event(f: &EventFields, data_size: u64) -> Check {
    validate_required(f)?;
    validate_types(f)?;
    validate_data_size(data_size)
}

/// `validate_event_type/1`: `None` is a non-atom argument.
pub fn validate_event_type(atom: Option<&str>) -> Check {
    match atom {
        None => Err(EventRule::TypeType),
        Some(name) => require(ALLOWED_EVENT_TYPES.contains(&name), EventRule::InvalidType),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> EventFields {
        EventFields {
            event_id: Field::PosInt,
            event_type: Field::Atom,
            timestamp: Field::NonPosInt,
            wall_time: Field::Nil,
            node: Field::Atom,
            pid: Field::Pid,
            correlation_id: Field::Nil,
            parent_id: Field::Nil,
        }
    }

    #[test]
    fn valid_event_passes() {
        assert_eq!(validate_event(&valid(), 10), Ok(()));
    }

    #[test]
    fn empty_event_reports_id_first() {
        let empty = EventFields {
            event_id: Field::Nil,
            event_type: Field::Nil,
            timestamp: Field::Nil,
            ..valid()
        };
        let err = validate_event(&empty, 0);
        assert_eq!(err, Err(EventRule::IdNil));
        assert_eq!(EventRule::IdNil.to_string(), "Event ID cannot be nil");
    }

    #[test]
    fn false_fields_skip_type_checks() {
        let f = EventFields {
            event_id: Field::False,
            timestamp: Field::False,
            ..valid()
        };
        assert_eq!(validate_event(&f, 0), Ok(()));
        let s = EventFields {
            event_id: Field::Binary,
            ..valid()
        };
        assert_eq!(validate_event(&s, 0), Err(EventRule::IdType));
        assert_eq!(EventRule::IdType.kind(), EventKind::TypeMismatch);
    }

    #[test]
    fn size_boundary() {
        assert_eq!(validate_data_size(MAX_DATA_SIZE), Ok(()));
        assert_eq!(
            validate_data_size(MAX_DATA_SIZE + 1),
            Err(EventRule::DataTooLarge)
        );
        let bad_types = EventFields {
            pid: Field::Atom,
            ..valid()
        };
        assert_eq!(
            validate_event(&bad_types, u64::MAX),
            Err(EventRule::PidType)
        );
    }

    #[test]
    fn event_type_list() {
        assert_eq!(validate_event_type(Some("type_b")), Ok(()));
        assert_eq!(validate_event_type(Some("x")), Err(EventRule::InvalidType));
        assert_eq!(validate_event_type(None), Err(EventRule::TypeType));
    }
}
