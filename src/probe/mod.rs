//! The checking client shared by `conform` and `fuzz`.
//!
//! - [`target`]: the `ws://` endpoint and the credentials for it;
//! - [`sut`]: the server under test (external, in-process, or a child process it can watch);
//! - [`conn`]: one raw connection whose answers are read up to a sentinel, as observations;
//! - [`http`]: the operations endpoints and `POST /v1/events`.
//!
//! It judges nothing: what an observation should have been is for the callers.

pub mod conn;
pub mod http;
pub mod sut;
pub mod target;

pub use conn::{Conn, End, Observation, Presented, Received, Upgrade};
pub use sut::{StartError, Sut, SutSpec};
pub use target::{Credentials, Target};
