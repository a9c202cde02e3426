//! Per-user webhook alerts (docs/product.md, Alerts): a user's webhooks
//! (Discord-compatible or generic JSON), the events they are sent, and the
//! bounded log of every delivery.
//!
//! - [`event`]: the event kinds, the events, the payloads (built from an
//!   allow-list of each event's fixed fields);
//! - [`target`]: where a webhook may point (http(s), no credentials, public
//!   addresses unless LEFT4ME_WEBHOOK_ALLOW_PRIVATE) and resolving a host to
//!   the checked addresses a delivery is pinned to;
//! - [`store`]: webhooks and deliveries in the database, [`raise`];
//! - [`sender`]: the background sender with its retries.
//!
//! The rest of the app calls [`raise`]; the pages call the CRUD functions.

pub mod event;
pub mod sender;
pub mod store;
pub mod target;

pub use event::{AlertEvent, EventKind, Format, KindInfo, KINDS};
pub use sender::{AlertSender, SenderSettings};
pub use store::{
    create, delete, deliveries, get, list, raise, send_test, set_events, AlertError, Delivery,
    DeliveryState, EventSet, Webhook, WebhookInput, KEEP_DELIVERIES, MAX_WEBHOOKS,
};
pub use target::TargetError;
