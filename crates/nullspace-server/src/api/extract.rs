//! Request bodies that speak the protocol's error envelope: a body must be one JSON object, and a
//! malformed or non-object one is a 400 `invalid_request` naming what was wrong.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::ApiError;

/// `body` as a JSON object (`what` names the body in errors); blank bodies are `None`.
pub fn json_object(body: &[u8], what: &str) -> Result<Option<Map<String, Value>>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(other) => {
            Err(ApiError::invalid(format!("invalid {what} body: expected a JSON object, got {}", kind(&other))))
        }
        Err(error) => Err(ApiError::invalid(format!("invalid {what} body: {error}"))),
    }
}

/// `map` as `T`; a field of the wrong type is a 400.
pub fn from_object<T: DeserializeOwned>(map: Map<String, Value>, what: &str) -> Result<T, ApiError> {
    serde_json::from_value(Value::Object(map))
        .map_err(|error| ApiError::invalid(format!("invalid {what} body: {error}")))
}

/// A non-blank JSON object body as `T`.
pub fn parse_object<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    let map = json_object(body, what)?
        .ok_or_else(|| ApiError::invalid(format!("invalid {what} body: expected a JSON object, got nothing")))?;
    from_object(map, what)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_objects_are_bodies() {
        assert!(json_object(b"", "x").unwrap().is_none());
        assert!(json_object(b" {\"a\": 1} ", "x").unwrap().is_some());
        for bad in [&b"[]"[..], b"null", b"3", b"\"s\"", b"{", b"true"] {
            assert!(json_object(bad, "x").is_err(), "{:?} accepted", String::from_utf8_lossy(bad));
        }
        assert!(parse_object::<Map<String, Value>>(b"", "x").is_err());
    }
}
