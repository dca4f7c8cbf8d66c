//! Error codes (PROTOCOL.md §6) and the WebSocket close codes the protocol assigns to them.

use serde::{Deserialize, Serialize};

/// The `code` of an `error` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    AuthError,
    SubscriptionError,
    InvalidMessage,
    PermissionError,
    ConnectionError,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 5] = [
        ErrorCode::AuthError,
        ErrorCode::SubscriptionError,
        ErrorCode::InvalidMessage,
        ErrorCode::PermissionError,
        ErrorCode::ConnectionError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::AuthError => "AUTH_ERROR",
            ErrorCode::SubscriptionError => "SUBSCRIPTION_ERROR",
            ErrorCode::InvalidMessage => "INVALID_MESSAGE",
            ErrorCode::PermissionError => "PERMISSION_ERROR",
            ErrorCode::ConnectionError => "CONNECTION_ERROR",
        }
    }

    pub fn from_name(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Codes a third-party server need not implement (PROTOCOL.md marks them *extension*).
    pub fn is_extension(self) -> bool {
        matches!(self, ErrorCode::InvalidMessage | ErrorCode::PermissionError)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WebSocket close codes used by PROTOCOL.md.
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// Going away: server shutdown, or a peer that stopped answering pings (§1).
    pub const GOING_AWAY: u16 = 1001;
    /// RFC 6455 framing error (§1).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Closed without a close frame; never sent, only observed.
    pub const ABNORMAL: u16 = 1006;
    /// Invalid UTF-8 in a text frame (§1).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Invalid or expired token (§2).
    pub const POLICY_VIOLATION: u16 = 1008;
    /// Client message over the size limit (§1).
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// Slow consumer or connection limit (§5, §6).
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_the_protocol_spells_them() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(ErrorCode::from_name(code.as_str()), Some(code));
        }
    }
}
