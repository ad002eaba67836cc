//! Agent attributes in Mesos' `--attributes` syntax: `rack:a;u:1;zone:{a,b};r:[1-3]`.
//!
//! A value is ranges (`[1-3,5-6]`, sorted and coalesced), a set (`{a,b}`), a scalar (a finite
//! number) or else text. Attributes keep the order they were given in; names are unique.

use crate::resources::{
    coalesce, format_ranges, format_set, parse_ranges, parse_set, validate_name, validate_set_item,
    JSON_SEPARATOR,
};
use crate::Range;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AttributeValue {
    Scalar(f64),
    Ranges(Vec<Range>),
    Set(BTreeSet<String>),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    pub name: String,
    pub value: AttributeValue,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributesError {
    #[error("invalid attribute {text:?}: {why}")]
    Invalid { text: String, why: String },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attributes(pub Vec<Attribute>);

impl AttributeValue {
    /// Reads one value: `[..]` ranges, `{..}` a set, a finite number a scalar, anything else
    /// (non-empty) text. Surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<AttributeValue, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty value".to_string());
        }
        if text.starts_with('[') {
            return parse_ranges(text).map(AttributeValue::Ranges);
        }
        if text.starts_with('{') {
            return parse_set(text).map(AttributeValue::Set);
        }
        match text.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(AttributeValue::Scalar(x)),
            _ => Ok(AttributeValue::Text(text.to_string())),
        }
    }

    /// The Mesos `/state` JSON form: scalars as numbers, ranges as `"[1-3, 5-6]"`, sets as
    /// `"{a, b}"`, text as is.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            AttributeValue::Scalar(x) => serde_json::Value::from(*x),
            AttributeValue::Ranges(ranges) => {
                serde_json::Value::from(format_ranges(ranges, JSON_SEPARATOR))
            }
            AttributeValue::Set(set) => serde_json::Value::from(format_set(set, JSON_SEPARATOR)),
            AttributeValue::Text(text) => serde_json::Value::from(text.as_str()),
        }
    }
}

/// Prints the `--attributes` syntax: `1`, `0.5`, `[1-3,5-6]`, `{a,b}`, `text`.
impl fmt::Display for AttributeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttributeValue::Scalar(x) => write!(f, "{x}"),
            AttributeValue::Ranges(ranges) => f.write_str(&format_ranges(ranges, ",")),
            AttributeValue::Set(set) => f.write_str(&format_set(set, ",")),
            AttributeValue::Text(text) => f.write_str(text),
        }
    }
}

impl Attributes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses Mesos' `--attributes` syntax: `name:value` items separated by `;` (or newlines),
    /// e.g. `rack:a;u:1;zone:{a,b};r:[1-3]`. Whitespace around tokens and empty items are
    /// tolerated; a name may appear once.
    pub fn parse(text: &str) -> Result<Self, AttributesError> {
        let mut items: Vec<Attribute> = Vec::new();
        for token in text.split([';', '\n']) {
            let token = token.trim();
            if token.is_empty() {
                continue;
            }
            let invalid = |why: String| AttributesError::Invalid {
                text: token.to_string(),
                why,
            };
            let (name, value) = token
                .split_once(':')
                .ok_or_else(|| invalid("expected name:value".to_string()))?;
            let name = name.trim();
            validate_name(name).map_err(invalid)?;
            let value = AttributeValue::parse(value).map_err(invalid)?;
            if items.iter().any(|a| a.name == name) {
                return Err(invalid(format!("duplicate attribute {name:?}")));
            }
            items.push(Attribute {
                name: name.to_string(),
                value,
            });
        }
        Ok(Attributes(items))
    }

    /// Checks attributes built by hand (or received) as [`Attributes::parse`] would: valid unique
    /// names, non-empty text, valid set items, ranges with begin <= end. Ranges come back
    /// coalesced.
    pub fn from_vec(items: Vec<Attribute>) -> Result<Self, AttributesError> {
        let mut out: Vec<Attribute> = Vec::with_capacity(items.len());
        for Attribute { name, value } in items {
            let text = format!("{name}:{value}");
            let invalid = |why: String| AttributesError::Invalid {
                text: text.clone(),
                why,
            };
            validate_name(&name).map_err(invalid)?;
            let value = match value {
                AttributeValue::Scalar(x) if !x.is_finite() => {
                    return Err(invalid(format!("scalar {x} is not a finite number")));
                }
                AttributeValue::Ranges(ranges) => {
                    if let Some(r) = ranges.iter().find(|r| r.begin > r.end) {
                        return Err(invalid(format!("range \"{r}\" begins after it ends")));
                    }
                    AttributeValue::Ranges(coalesce(ranges))
                }
                AttributeValue::Set(set) => {
                    for item in &set {
                        validate_set_item(item).map_err(invalid)?;
                    }
                    AttributeValue::Set(set)
                }
                AttributeValue::Text(t) => {
                    if t.trim().is_empty() {
                        return Err(invalid("empty value".to_string()));
                    }
                    if t.contains([';', '\n']) {
                        return Err(invalid(format!("text {t:?} contains a separator")));
                    }
                    AttributeValue::Text(t)
                }
                other => other,
            };
            if out.iter().any(|a| a.name == name) {
                return Err(invalid(format!("duplicate attribute {name:?}")));
            }
            out.push(Attribute { name, value });
        }
        Ok(Attributes(out))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Attribute> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The value of the attribute `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&AttributeValue> {
        self.0.iter().find(|a| a.name == name).map(|a| &a.value)
    }

    /// The Mesos `/state` JSON shape: `{"rack":"a","u":1.0,"r":"[1-3]","zone":"{a, b}"}`.
    pub fn to_json(&self) -> serde_json::Value {
        let object = self
            .0
            .iter()
            .map(|a| (a.name.clone(), a.value.to_json()))
            .collect::<serde_json::Map<_, _>>();
        serde_json::Value::Object(object)
    }
}

/// Prints the `--attributes` syntax that [`Attributes::parse`] reads back.
impl fmt::Display for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, attribute) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{}:{}", attribute.name, attribute.value)?;
        }
        Ok(())
    }
}

impl FromStr for Attributes {
    type Err = AttributesError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Attributes::parse(text)
    }
}

impl<'a> IntoIterator for &'a Attributes {
    type Item = &'a Attribute;
    type IntoIter = std::slice::Iter<'a, Attribute>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn attrs(text: &str) -> Attributes {
        Attributes::parse(text).unwrap()
    }

    fn err(text: &str) -> String {
        Attributes::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_the_mesos_syntax() {
        let parsed = attrs("rack:a;u:1;zone:{b,a};r:[4-5,1-3];host:node-1.example;neg:-2.5");
        let expected = vec![
            Attribute {
                name: "rack".into(),
                value: AttributeValue::Text("a".into()),
            },
            Attribute {
                name: "u".into(),
                value: AttributeValue::Scalar(1.0),
            },
            Attribute {
                name: "zone".into(),
                value: AttributeValue::Set(["a".to_string(), "b".to_string()].into()),
            },
            Attribute {
                name: "r".into(),
                value: AttributeValue::Ranges(vec![Range { begin: 1, end: 5 }]),
            },
            Attribute {
                name: "host".into(),
                value: AttributeValue::Text("node-1.example".into()),
            },
            Attribute {
                name: "neg".into(),
                value: AttributeValue::Scalar(-2.5),
            },
        ];
        assert_eq!(parsed.0, expected);
        assert_eq!(parsed.get("u"), Some(&AttributeValue::Scalar(1.0)));
        assert_eq!(parsed.get("nothing"), None);
        assert_eq!(parsed.len(), 6);
    }

    #[test]
    fn tolerates_whitespace_and_empty_items() {
        assert_eq!(
            attrs(" rack : a b ;\n u: 1 ;; zone:{ a , b };"),
            attrs("rack:a b;u:1;zone:{a,b}")
        );
        assert!(attrs("").is_empty());
        assert!(attrs(" ; \n ").is_empty());
        // Values may hold ':'; non-finite numbers are text.
        assert_eq!(
            attrs("url:http://x").get("url"),
            Some(&AttributeValue::Text("http://x".into()))
        );
        assert_eq!(
            attrs("n:nan").get("n"),
            Some(&AttributeValue::Text("nan".into()))
        );
        assert_eq!(
            attrs("n:1e999").get("n"),
            Some(&AttributeValue::Text("1e999".into()))
        );
    }

    #[test]
    fn rejects_bad_input_with_a_clear_message() {
        let cases = [
            ("rack", r#"invalid attribute "rack": expected name:value"#),
            ("rack:", r#"invalid attribute "rack:": empty value"#),
            ("rack: ", r#"invalid attribute "rack:": empty value"#),
            (":a", r#"invalid attribute ":a": empty name"#),
            (
                "rack:a;rack:b",
                r#"invalid attribute "rack:b": duplicate attribute "rack""#,
            ),
            (
                "r:[3-1]",
                r#"invalid attribute "r:[3-1]": range "3-1" begins after it ends"#,
            ),
            (
                "r:[1-3",
                r#"invalid attribute "r:[1-3": "[1-3" is missing the closing "]""#,
            ),
            (
                "z:{a",
                r#"invalid attribute "z:{a": "{a" is missing the closing "}""#,
            ),
            (
                "z:{a,}",
                r#"invalid attribute "z:{a,}": "{a,}": empty set item"#,
            ),
            (
                "my rack:a",
                r#"invalid attribute "my rack:a": name "my rack" contains the whitespace or control character ' '"#,
            ),
        ];
        for (input, message) in cases {
            assert_eq!(err(input), message, "input {input:?}");
        }
    }

    #[test]
    fn from_vec_validates() {
        let ok = Attributes::from_vec(vec![Attribute {
            name: "r".into(),
            value: AttributeValue::Ranges(vec![
                Range { begin: 4, end: 5 },
                Range { begin: 1, end: 3 },
            ]),
        }])
        .unwrap();
        assert_eq!(ok, attrs("r:[1-5]"));
        let dup = vec![
            Attribute {
                name: "a".into(),
                value: AttributeValue::Scalar(1.0),
            },
            Attribute {
                name: "a".into(),
                value: AttributeValue::Scalar(2.0),
            },
        ];
        assert_eq!(
            Attributes::from_vec(dup).unwrap_err().to_string(),
            r#"invalid attribute "a:2": duplicate attribute "a""#
        );
        let text = vec![Attribute {
            name: "t".into(),
            value: AttributeValue::Text("a;b".into()),
        }];
        assert_eq!(
            Attributes::from_vec(text).unwrap_err().to_string(),
            r#"invalid attribute "t:a;b": text "a;b" contains a separator"#
        );
    }

    #[test]
    fn display_round_trips() {
        let text = "rack:a;u:1;zone:{a,b};r:[1-3,5-6];w:0.1;host:node 1";
        let parsed = attrs(text);
        assert_eq!(parsed.to_string(), text);
        assert_eq!(parsed.to_string().parse::<Attributes>().unwrap(), parsed);
        assert_eq!(Attributes::new().to_string(), "");
    }

    #[test]
    fn json_shape() {
        assert_eq!(
            attrs("rack:a;u:1;r:[1-3];zone:{a,b};p:[1-2,5-6]").to_json(),
            serde_json::json!({
                "rack": "a",
                "u": 1.0,
                "r": "[1-3]",
                "zone": "{a, b}",
                "p": "[1-2, 5-6]",
            })
        );
        assert!(attrs("u:1").to_json()["u"].is_f64());
        assert_eq!(Attributes::new().to_json(), serde_json::json!({}));
    }

    fn arb_value() -> impl Strategy<Value = AttributeValue> {
        prop_oneof![
            (-1e9f64..1e9).prop_map(AttributeValue::Scalar),
            prop::collection::vec((0u64..100, 0u64..10), 0..4).prop_map(|v| {
                AttributeValue::Ranges(coalesce(
                    v.into_iter()
                        .map(|(b, l)| Range {
                            begin: b,
                            end: b + l,
                        })
                        .collect(),
                ))
            }),
            prop::collection::btree_set("[a-z0-9_.-]{1,6}", 0..4).prop_map(AttributeValue::Set),
            "[a-z][a-z0-9 ._/-]{0,10}[a-z]".prop_map(AttributeValue::Text),
        ]
    }

    fn arb_attributes() -> impl Strategy<Value = Attributes> {
        prop::collection::btree_map("[a-z][a-z0-9_.-]{0,8}", arb_value(), 0..6).prop_map(|m| {
            Attributes(
                m.into_iter()
                    .map(|(name, value)| Attribute { name, value })
                    .collect(),
            )
        })
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(a in arb_attributes()) {
            prop_assert_eq!(Attributes::parse(&a.to_string()).unwrap(), a.clone());
            prop_assert_eq!(Attributes::from_vec(a.0.clone()).unwrap(), a);
        }

        #[test]
        fn parse_never_panics(text in ".{0,64}") {
            let _ = Attributes::parse(&text);
        }

        #[test]
        fn parsed_attributes_round_trip(text in "[a-z:;,{}\\[\\]0-9. -]{0,40}") {
            if let Ok(a) = Attributes::parse(&text) {
                prop_assert_eq!(Attributes::parse(&a.to_string()).unwrap(), a);
            }
        }
    }
}
