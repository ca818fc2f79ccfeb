//! The okchat REST contract: the JSON it accepts and the JSON it answers, and nothing else. This is
//! the only place that knows the contract's field names (the catalog in core knows their paths).

pub mod json;
pub mod request;
pub mod response;
