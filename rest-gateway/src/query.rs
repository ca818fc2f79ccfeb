//! Query strings, read strictly: an unknown or repeated parameter is an error, never ignored.

use std::collections::HashMap;

use chatbot_core::{Error, Violation, ViolationCode};

/// The parameters of one query string.
pub(crate) struct QueryParams(HashMap<String, String>);

impl QueryParams {
    /// Reads `query`, accepting only the `known` parameter names.
    pub fn parse(query: Option<&str>, known: &[&str]) -> Result<Self, Error> {
        let mut params = HashMap::new();
        let mut violations = Vec::new();
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            if !known.contains(&name.as_ref()) {
                violations.push(Violation::new(
                    name,
                    ViolationCode::UnknownField,
                    "is not a parameter of this endpoint",
                ));
            } else if params.insert(name.to_string(), value.into_owned()).is_some() {
                violations.push(Violation::new(name, ViolationCode::InvalidFormat, "must be given at most once"));
            }
        }
        if violations.is_empty() { Ok(QueryParams(params)) } else { Err(Error::Invalid { violations }) }
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `name` as `true` or `false`, if given.
    pub fn flag(&self, name: &str, violations: &mut Vec<Violation>) -> Option<bool> {
        match self.get(name)? {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                violations.push(Violation::new(name, ViolationCode::InvalidFormat, "must be true or false"));
                None
            }
        }
    }
}
