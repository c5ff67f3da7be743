//! The HTTP API of `shared/API.md`: routes, handlers and the one error type.

mod definitions;
mod error;
mod openapi;
mod ops;
mod router;
mod sagas;

pub use error::ApiError;
pub use openapi::ApiDoc;
pub use router::app;
