//! Numeric codes carried in ERROR, REJECT, GOAWAY and RECEIPT frames. Owns their values on the wire; unknown
//! values decode to `Other(n)` so a newer peer's code never breaks an older decoder.

macro_rules! wire_code {
    ($(#[$meta:meta])* $name:ident : $repr:ty { $($(#[$vmeta:meta])* $variant:ident = $value:expr,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A code this version does not know.
            Other($repr),
        }

        impl $name {
            /// The code's value on the wire.
            pub fn to_wire(self) -> $repr {
                match self {
                    $(Self::$variant => $value,)*
                    Self::Other(value) => value,
                }
            }

            /// The code for a value read from the wire.
            pub fn from_wire(value: $repr) -> Self {
                match value {
                    $($value => Self::$variant,)*
                    other => Self::Other(other),
                }
            }
        }
    };
}

wire_code! {
    /// Why the server is closing the connection (ERROR frame). The connection closes right after it.
    ErrorCode: u16 {
        /// A frame could not be decoded.
        Malformed = 1,
        /// A frame's length is over the server's limit.
        FrameTooLarge = 2,
        /// A frame arrived that is not allowed in the connection's state (e.g. SEND before HELLO).
        UnexpectedFrame = 3,
        /// HELLO named a protocol version the server does not speak.
        UnsupportedVersion = 4,
        /// HELLO's user id and device key do not match (or the key was revoked).
        AuthFailed = 5,
        /// HELLO did not complete within the handshake timeout.
        HandshakeTimeout = 6,
        /// The server has no room for this connection now.
        Overloaded = 7,
        /// The server failed on its side; the client may retry later.
        Internal = 8,
    }
}

wire_code! {
    /// Why one SEND was refused (REJECT frame). The connection stays open; the message was not stored.
    RejectCode: u16 {
        /// No such user.
        UnknownRecipient = 1,
        /// The recipient's queue holds its maximum number of messages.
        RecipientQueueFull = 2,
        /// The recipient's queue holds its maximum number of bytes.
        RecipientQueueBytesFull = 3,
        /// The recipient's home core holds its maximum bytes of queued messages.
        ServerQueueFull = 4,
        /// The server is shutting down and takes no new messages.
        ShuttingDown = 5,
        /// The message body is empty or over the body limit.
        BodyInvalid = 6,
        /// The server cannot store messages right now (e.g. its disk is full).
        StorageUnavailable = 7,
        /// The sender has too many receipts queued that it has not acknowledged.
        SenderBacklogFull = 8,
        /// The `client_msg_id` was used before by this sender for a SEND with another recipient or body (within
        /// the dedup window): a new message needs a new id.
        ClientMsgIdReused = 9,
    }
}

wire_code! {
    /// Why the server is closing a connection on purpose (GOAWAY frame).
    GoawayReason: u16 {
        /// The server is shutting down; reconnect later.
        ShuttingDown = 1,
        /// The same user logged in on another connection.
        Replaced = 2,
        /// The device key was revoked by a newer registration.
        Revoked = 3,
        /// No frame arrived within the idle timeout.
        IdleTimeout = 4,
        /// An operator ended the session (`ringline admin users kick`); the device key still works.
        Kicked = 5,
    }
}

wire_code! {
    /// Why a registration step was refused (REGISTER_REFUSED frame). The connection stays open.
    RegisterRefusal: u16 {
        /// The phone number is not a valid user id (E.164 digits, 7 to 15 of them).
        PhoneInvalid = 1,
        /// The PIN does not match; attempts remain.
        PinWrong = 2,
        /// No PIN is pending for this phone: never requested, expired, or used up.
        PinExpired = 3,
        /// Too many wrong PINs for this phone: the PIN is void; request a new one later.
        TooManyAttempts = 4,
        /// Too many PIN requests for this phone; wait `retry_after_s`.
        TooManyRequests = 5,
        /// Too many registration requests or wrong PINs from this source address; wait `retry_after_s`.
        SourceLimited = 6,
        /// The server cannot register now (PIN sender busy, storage failing); retry later. Also the answer
        /// for a phone that has used every device generation (the current device keeps its key).
        Unavailable = 7,
    }
}

wire_code! {
    /// What a RECEIPT reports about a message the receiving user sent earlier.
    ReceiptKind: u8 {
        /// The recipient's device acknowledged the message (DELIVERED).
        Delivered = 1,
        /// The recipient read the message (READ).
        Read = 2,
        /// The message stayed undelivered past the queue's age limit and was dropped by the server.
        Expired = 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_values_survive() {
        for value in 0..=20u16 {
            assert_eq!(ErrorCode::from_wire(value).to_wire(), value);
            assert_eq!(RejectCode::from_wire(value).to_wire(), value);
            assert_eq!(GoawayReason::from_wire(value).to_wire(), value);
            assert_eq!(RegisterRefusal::from_wire(value).to_wire(), value);
        }
        assert_eq!(ErrorCode::from_wire(5), ErrorCode::AuthFailed);
        assert_eq!(ErrorCode::from_wire(999), ErrorCode::Other(999));
        assert_eq!(ReceiptKind::from_wire(2), ReceiptKind::Read);
        assert_eq!(ReceiptKind::from_wire(200), ReceiptKind::Other(200));
    }
}
