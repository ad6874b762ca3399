//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, exists, `!key`, `>`, `<`) and field selectors.

use serde_json::Value;

use crate::status::ApiError;

/// One operator of a label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

/// One `key op values` requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

/// A parsed label selector: every requirement must hold (an empty selector selects everything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

fn tokenize(input: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => i += 1,
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            '>' => {
                tokens.push(Token::Gt);
                i += 1;
            }
            '<' => {
                tokens.push(Token::Lt);
                i += 1;
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                tokens.push(Token::NotEq);
                i += 2;
            }
            '!' => {
                tokens.push(Token::Not);
                i += 1;
            }
            '=' if chars.get(i + 1) == Some(&'=') => {
                tokens.push(Token::DoubleEq);
                i += 2;
            }
            '=' => {
                tokens.push(Token::Eq);
                i += 1;
            }
            c if is_word_char(c) => {
                let start = i;
                while i < chars.len() && is_word_char(chars[i]) {
                    i += 1;
                }
                tokens.push(Token::Word(chars[start..i].iter().collect()));
            }
            other => return Err(format!("invalid character {other:?}")),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn word(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w)) => Ok(w),
            other => Err(format!("expected {what}, found {other:?}")),
        }
    }

    /// A value may be empty (`key=`), as in the real grammar.
    fn value(&mut self) -> String {
        match self.peek() {
            Some(Token::Word(_)) => match self.next() {
                Some(Token::Word(w)) => w,
                _ => String::new(),
            },
            _ => String::new(),
        }
    }

    fn set(&mut self) -> Result<Vec<String>, String> {
        if self.next() != Some(Token::Open) {
            return Err("expected '(' after set operator".into());
        }
        let mut values = Vec::new();
        loop {
            match self.peek() {
                Some(Token::Close) => {
                    self.pos += 1;
                    return Ok(values);
                }
                Some(Token::Comma) => self.pos += 1,
                Some(Token::Word(_)) => values.push(self.value()),
                other => return Err(format!("unexpected {other:?} in value set")),
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        if self.peek() == Some(&Token::Not) {
            self.pos += 1;
            let key = self.word("key after '!'")?;
            return Ok(Requirement {
                key,
                op: Op::DoesNotExist,
            });
        }
        let key = self.word("key")?;
        let op = match self.peek() {
            None | Some(Token::Comma) => Op::Exists,
            Some(Token::Eq) | Some(Token::DoubleEq) => {
                self.pos += 1;
                Op::In(vec![self.value()])
            }
            Some(Token::NotEq) => {
                self.pos += 1;
                Op::NotIn(vec![self.value()])
            }
            Some(Token::Gt) | Some(Token::Lt) => {
                let gt = self.next() == Some(Token::Gt);
                let raw = self.word("integer")?;
                let n: i64 = raw.parse().map_err(|_| {
                    format!("for 'Gt', 'Lt' operators, the value must be an integer: {raw}")
                })?;
                if gt { Op::Gt(n) } else { Op::Lt(n) }
            }
            Some(Token::Word(w)) if w == "in" => {
                self.pos += 1;
                Op::In(self.set()?)
            }
            Some(Token::Word(w)) if w == "notin" => {
                self.pos += 1;
                Op::NotIn(self.set()?)
            }
            Some(other) => return Err(format!("found {other:?}, expected an operator")),
        };
        Ok(Requirement { key, op })
    }
}

impl LabelSelector {
    /// Parses the `labelSelector` query value.
    pub fn parse(input: &str) -> Result<Self, ApiError> {
        let fail = |why: String| {
            ApiError::bad_request(format!("unable to parse requirement: {why} (in {input:?})"))
        };
        let tokens = tokenize(input).map_err(fail)?;
        let mut parser = Parser { tokens, pos: 0 };
        let mut requirements = Vec::new();
        while parser.peek().is_some() {
            requirements.push(parser.requirement().map_err(fail)?);
            match parser.next() {
                None | Some(Token::Comma) => {}
                Some(other) => return Err(fail(format!("unexpected {other:?}"))),
            }
        }
        Ok(Self { requirements })
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        self.requirements.iter().all(|r| {
            let value = labels.and_then(|l| l.get(&r.key)).and_then(Value::as_str);
            match (&r.op, value) {
                (Op::Exists, v) => v.is_some(),
                (Op::DoesNotExist, v) => v.is_none(),
                (Op::In(set), Some(v)) => set.iter().any(|s| s == v),
                (Op::In(_), None) => false,
                (Op::NotIn(set), Some(v)) => !set.iter().any(|s| s == v),
                (Op::NotIn(_), None) => true,
                (Op::Gt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x > *n),
                (Op::Lt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x < *n),
                (Op::Gt(_) | Op::Lt(_), None) => false,
            }
        })
    }
}

/// A parsed field selector: `field=value`, `field==value`, `field!=value`, comma-separated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

/// Splits on unescaped commas and unescapes `\,`, `\=`, `\\`.
fn split_terms(input: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                current.push('\\');
                if let Some(n) = chars.next() {
                    current.push(n);
                }
            }
            ',' => terms.push(std::mem::take(&mut current)),
            other => current.push(other),
        }
    }
    terms.push(current);
    terms.into_iter().filter(|t| !t.trim().is_empty()).collect()
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Finds the first unescaped occurrence of an operator; returns (field, negated, value).
fn split_term(term: &str) -> Option<(String, bool, String)> {
    let bytes = term.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                return Some((term[..i].trim().to_string(), true, unescape(&term[i + 2..])));
            }
            b'=' => {
                let skip = if bytes.get(i + 1) == Some(&b'=') {
                    2
                } else {
                    1
                };
                return Some((
                    term[..i].trim().to_string(),
                    false,
                    unescape(&term[i + skip..]),
                ));
            }
            _ => i += 1,
        }
    }
    None
}

impl FieldSelector {
    /// Parses `fieldSelector`, accepting only `metadata.name`, `metadata.namespace` and `extra`.
    pub fn parse(input: &str, extra: &[String]) -> Result<Self, ApiError> {
        Self::parse_renamed(input, extra, &|f| f.to_string())
    }

    /// Like `parse`, with each field label first renamed onto the stored form.
    pub fn parse_renamed(
        input: &str,
        extra: &[String],
        rename: &dyn Fn(&str) -> String,
    ) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for term in split_terms(input) {
            let Some((field, negated, value)) = split_term(&term) else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{input}'; can't understand '{term}'"
                )));
            };
            let field = rename(&field);
            let known =
                field == "metadata.name" || field == "metadata.namespace" || extra.contains(&field);
            if !known {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            terms.push((field, negated, value));
        }
        Ok(Self { terms })
    }

    /// Whether the object's fields satisfy every term.
    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|(field, negated, value)| {
            let actual = field_value(object, field);
            (actual == *value) != *negated
        })
    }
}

/// The string form of a field as the real server's field-label functions give it.
fn field_value(object: &Value, field: &str) -> String {
    let path = match field {
        // Events expose source.component under the label "source".
        "source" => "source.component",
        other => other,
    };
    let mut cur = object;
    for part in path.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => {
                // Booleans default to false in the real field sets (spec.unschedulable, spec.hostNetwork).
                return if matches!(field, "spec.unschedulable" | "spec.hostNetwork") {
                    "false".into()
                } else {
                    String::new()
                };
            }
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({ "metadata": { "name": "a", "namespace": "ns", "labels": labels } })
    }

    #[test]
    fn label_operators_follow_kubernetes_semantics() {
        let cases: &[(&str, Value, bool)] = &[
            ("app=web", json!({"app": "web"}), true),
            ("app==web", json!({"app": "web"}), true),
            ("app=web", json!({"app": "db"}), false),
            ("app!=web", json!({}), true),
            ("app!=web", json!({"app": "web"}), false),
            ("app in (web, db)", json!({"app": "db"}), true),
            ("app in (web,db)", json!({"app": "x"}), false),
            ("app notin (web,db)", json!({}), true),
            ("app notin (web,db)", json!({"app": "db"}), false),
            ("app", json!({"app": ""}), true),
            ("app", json!({}), false),
            ("!app", json!({}), true),
            ("!app", json!({"app": "x"}), false),
            ("a=1,b in (2,3),!c", json!({"a": "1", "b": "3"}), true),
            (
                "a=1,b in (2,3),!c",
                json!({"a": "1", "b": "3", "c": "x"}),
                false,
            ),
            ("n>5", json!({"n": "6"}), true),
            ("n<5", json!({"n": "6"}), false),
            ("example.com/role=x", json!({"example.com/role": "x"}), true),
            ("", json!({}), true),
        ];
        for (selector, labels, expected) in cases {
            let s = LabelSelector::parse(selector).unwrap();
            assert_eq!(
                s.matches(&obj(labels.clone())),
                *expected,
                "{selector} on {labels}"
            );
        }
    }

    #[test]
    fn malformed_label_selector_is_a_bad_request() {
        for bad in ["app in web", "=x", "app in (a", "a@b"] {
            let err = LabelSelector::parse(bad).unwrap_err();
            assert_eq!(err.code, 400, "{bad}");
        }
    }

    #[test]
    fn field_selector_matches_name_namespace_and_known_labels() {
        let o = json!({"metadata": {"name": "a", "namespace": "ns"}, "spec": {"nodeName": "n1"}});
        let extra = vec!["spec.nodeName".to_string()];
        let cases = [
            ("metadata.name=a", true),
            ("metadata.name==a,metadata.namespace=ns", true),
            ("metadata.name!=a", false),
            ("spec.nodeName=n1", true),
            ("spec.nodeName=n2", false),
        ];
        for (sel, expected) in cases {
            assert_eq!(
                FieldSelector::parse(sel, &extra).unwrap().matches(&o),
                expected,
                "{sel}"
            );
        }
    }

    #[test]
    fn unknown_field_label_is_rejected() {
        let err = FieldSelector::parse("spec.foo=1", &[]).unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(err.message, "field label not supported: spec.foo");
    }
}
