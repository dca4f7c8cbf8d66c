//! Property tests (proptest) of the protocol core: filter semantics against a model, and
//! client-message validation (round trips, one verdict for any input, shape before meaning).

mod filters;
mod messages;
