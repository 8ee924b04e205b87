//! The driver an agent core holds per connection, whichever protocol the run speaks (`--protocol`):
//! [`AnyDriver`] (native or XMPP) and [`DriverUser`] (who a connection logs in as, per protocol). The one place
//! that knows every driver; the drivers do not know it, and it holds no protocol logic of its own (each call
//! goes to the chosen driver unchanged).

use std::sync::Arc;

use wire::UserKey;

use super::body::MessageBody;
use super::driver::{ChatDriver, OutgoingMessage, SendRefused, SessionEvent};
use super::native::{ClientSession, NativeError};
use super::xmpp::session::XmppError;
use super::xmpp::{XmppRealm, XmppSession};

/// Who a connection logs in as, per protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverUser {
    Native(UserKey),
    Xmpp { user: u64, password: Arc<str>, realm: Arc<XmppRealm> },
}

impl DriverUser {
    pub fn user(&self) -> u64 {
        match self {
            DriverUser::Native(key) => key.user,
            DriverUser::Xmpp { user, .. } => *user,
        }
    }
}

/// Why a connection of either protocol cannot go on. Its text is counted in reports (`protocol: …`), so each
/// variant reads as its driver's error did before the drivers had their own types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    #[error(transparent)]
    Native(#[from] NativeError),
    #[error("xmpp: {0}")]
    Xmpp(#[from] XmppError),
}

/// The driver of one connection, whichever protocol the run speaks. The XMPP session is boxed so that native
/// runs, which hold the most connections, keep their small slots.
#[derive(Debug)]
pub enum AnyDriver {
    Native(ClientSession),
    Xmpp(Box<XmppSession>),
}

impl AnyDriver {
    pub fn new(user: &DriverUser, body_bytes: u32, ping_interval_us: u64, client_msg_id_base: u64) -> Self {
        match user {
            DriverUser::Native(key) => {
                AnyDriver::Native(ClientSession::new(*key, body_bytes, ping_interval_us, client_msg_id_base))
            }
            DriverUser::Xmpp { user, password, realm } => AnyDriver::Xmpp(Box::new(XmppSession::new(
                realm.clone(),
                *user,
                password,
                body_bytes,
                ping_interval_us,
                client_msg_id_base,
            ))),
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $driver:ident => $call:expr) => {
        match $self {
            AnyDriver::Native($driver) => $call,
            AnyDriver::Xmpp($driver) => $call,
        }
    };
}

impl ChatDriver for AnyDriver {
    type Error = DriverError;

    fn user(&self) -> u64 {
        dispatch!(self, driver => driver.user())
    }
    fn handle_connected(&mut self, now_us: u64) {
        dispatch!(self, driver => driver.handle_connected(now_us))
    }
    fn handle_disconnected(&mut self) {
        dispatch!(self, driver => driver.handle_disconnected())
    }
    fn handle_input(&mut self, input: &[u8], events: &mut Vec<SessionEvent>) -> Result<(), DriverError> {
        dispatch!(self, driver => Ok(driver.handle_input(input, events)?))
    }
    fn handle_timeout(&mut self, now_us: u64) {
        dispatch!(self, driver => driver.handle_timeout(now_us))
    }
    fn handle_close(&mut self) {
        dispatch!(self, driver => driver.handle_close())
    }
    fn try_queue_send(&mut self, body: MessageBody) -> Result<OutgoingMessage, SendRefused> {
        dispatch!(self, driver => driver.try_queue_send(body))
    }
    fn transmit(&self) -> &[u8] {
        dispatch!(self, driver => driver.transmit())
    }
    fn handle_transmitted(&mut self, written: usize) {
        dispatch!(self, driver => driver.handle_transmitted(written))
    }
    fn is_online(&self) -> bool {
        dispatch!(self, driver => driver.is_online())
    }
    fn is_closing(&self) -> bool {
        dispatch!(self, driver => driver.is_closing())
    }
}
