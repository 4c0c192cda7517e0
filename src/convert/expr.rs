//! Argo Rollouts' conditions are written in expr (github.com/expr-lang/expr); Serin's are CEL.
//! Most conditions people write differ only in spelling: `len(x)` is `size(x)`, `all(result,
//! # < 1)` is `result.all(x, x < 1)`, `and` is `&&`. This translates those, token by token,
//! and says what it could not.

/// A token of an expr condition.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Number(String),
    Text(String),
    /// `#`, the element in a predicate.
    Element,
    Open(char),
    Close(char),
    Comma,
    Op(String),
}

fn tokenize(src: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_') {
                // `1e-3`: a sign right after the exponent belongs to the number.
                if matches!(chars[i], 'e' | 'E') && matches!(chars.get(i + 1), Some('-' | '+')) {
                    i += 1;
                }
                i += 1;
            }
            out.push(Token::Number(chars[start..i].iter().filter(|c| **c != '_').collect()));
        } else if c == '"' || c == '\'' || c == '`' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            if i >= chars.len() {
                return Err(format!("a string opened at {start} is not closed"));
            }
            i += 1;
            let body: String = chars[start + 1..i - 1].iter().collect();
            out.push(Token::Text(body));
        } else if c == '#' {
            out.push(Token::Element);
            i += 1;
        } else if "([{".contains(c) {
            out.push(Token::Open(c));
            i += 1;
        } else if ")]}".contains(c) {
            out.push(Token::Close(c));
            i += 1;
        } else if c == ',' {
            out.push(Token::Comma);
            i += 1;
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let op = if ["==", "!=", "<=", ">=", "&&", "||", "**", "??", "?.", ".."].contains(&two.as_str()) {
                two
            } else {
                c.to_string()
            };
            i += op.chars().count();
            out.push(Token::Op(op));
        }
    }
    Ok(out)
}

/// What translating one condition gave: the CEL text and what could not be carried over.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    pub cel: String,
    pub problems: Vec<String>,
}

/// Translates an expr condition to CEL.
pub fn translate(src: &str) -> Translated {
    let mut problems = Vec::new();
    let cel = match tokenize(src) {
        Ok(tokens) => {
            let mut t = Translator {
                tokens: &tokens,
                problems: &mut problems,
            };
            t.sequence(0, tokens.len()).trim().to_string()
        }
        Err(e) => {
            problems.push(format!("cannot read {src:?}: {e}"));
            src.to_string()
        }
    };
    Translated { cel, problems }
}

struct Translator<'a> {
    tokens: &'a [Token],
    problems: &'a mut Vec<String>,
}

impl Translator<'_> {
    /// Where the bracket opened at `open` closes.
    fn closing(&self, open: usize) -> usize {
        let mut depth = 0;
        for (i, t) in self.tokens.iter().enumerate().skip(open) {
            match t {
                Token::Open(_) => depth += 1,
                Token::Close(_) => {
                    depth -= 1;
                    if depth == 0 {
                        return i;
                    }
                }
                _ => {}
            }
        }
        self.tokens.len()
    }

    /// The arguments between `open` and its closing bracket, as token ranges.
    fn args(&self, open: usize, close: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut depth = 0;
        let mut start = open + 1;
        for i in open + 1..close {
            match &self.tokens[i] {
                Token::Open(_) => depth += 1,
                Token::Close(_) => depth -= 1,
                Token::Comma if depth == 0 => {
                    out.push((start, i));
                    start = i + 1;
                }
                _ => {}
            }
        }
        if start < close {
            out.push((start, close));
        }
        out
    }

    /// Translates tokens `from..to`.
    fn sequence(&mut self, from: usize, to: usize) -> String {
        let mut out = String::new();
        let mut i = from;
        while i < to {
            let (text, next) = self.one(i, to);
            push(&mut out, &text);
            i = next;
        }
        out
    }

    /// One token (or a whole call), and where the next begins.
    fn one(&mut self, i: usize, to: usize) -> (String, usize) {
        match &self.tokens[i] {
            Token::Ident(name)
                if matches!(self.tokens.get(i + 1), Some(Token::Open('(')))
                    && i + 1 < to
                    && !["and", "or", "not", "in"].contains(&name.as_str()) =>
            {
                let close = self.closing(i + 1).min(to);
                let args: Vec<(usize, usize)> = self.args(i + 1, close);
                (self.call(name, &args), close + 1)
            }
            Token::Ident(word) => (
                match word.as_str() {
                    "and" => "&&".into(),
                    "or" => "||".into(),
                    "not" => "!".into(),
                    "nil" => "null".into(),
                    other => other.into(),
                },
                i + 1,
            ),
            Token::Number(n) => (n.clone(), i + 1),
            Token::Text(s) => (format!("{s:?}"), i + 1),
            Token::Element => ("x".into(), i + 1),
            Token::Open(c) => {
                let close = self.closing(i).min(to);
                let inner = self.sequence(i + 1, close);
                let end = match c {
                    '(' => ')',
                    '[' => ']',
                    _ => '}',
                };
                (format!("{c}{inner}{end}"), close + 1)
            }
            Token::Close(c) => (c.to_string(), i + 1),
            Token::Comma => (",".into(), i + 1),
            Token::Op(op) => {
                match op.as_str() {
                    "**" => self.problems.push("`**` (power) has no CEL operator".into()),
                    "??" => self
                        .problems
                        .push("`??` (a default for nil) has no CEL operator: a missing value is an error".into()),
                    ".." => self.problems.push("ranges (`a..b`) have no CEL form".into()),
                    _ => {}
                }
                (op.clone(), i + 1)
            }
        }
    }

    fn arg(&mut self, range: Option<&(usize, usize)>) -> String {
        range
            .map(|(a, b)| self.sequence(*a, *b))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// A call of one of expr's functions, as CEL says it.
    fn call(&mut self, name: &str, args: &[(usize, usize)]) -> String {
        let first = self.arg(args.first());
        let second = self.arg(args.get(1));
        match name {
            "len" => format!("size({first})"),
            "all" => format!("{}.all(x, {second})", operand(&first)),
            "any" => format!("{}.exists(x, {second})", operand(&first)),
            "one" => format!("{}.exists_one(x, {second})", operand(&first)),
            "none" => format!("!{}.exists(x, {second})", operand(&first)),
            "filter" => format!("{}.filter(x, {second})", operand(&first)),
            "map" => format!("{}.map(x, {second})", operand(&first)),
            "count" => format!("size({}.filter(x, {second}))", operand(&first)),
            "isNaN" => format!("({first} != {first})"),
            "isInf" => format!("({first} > 1.7976931348623157e308 || {first} < -1.7976931348623157e308)"),
            "asInt" | "int" => format!("int({first})"),
            "asFloat" | "float" => format!("double({first})"),
            "string" => format!("string({first})"),
            "abs" => format!("({first} < 0.0 ? -{first} : {first})"),
            "default" => default_of(&first, &second, self.problems),
            other => {
                let rest: Vec<String> = args.iter().map(|r| self.arg(Some(r))).collect();
                self.problems
                    .push(format!("`{other}(...)` is not a function Serin knows how to translate"));
                format!("{other}({})", rest.join(", "))
            }
        }
    }
}

/// `default(v, d)`: `d` when `v` is missing. For the usual `default(result[N], d)`, the list may
/// be shorter; anything else has no missing state in CEL.
fn default_of(value: &str, fallback: &str, problems: &mut Vec<String>) -> String {
    if let Some(index) = value
        .strip_prefix("result[")
        .and_then(|r| r.strip_suffix(']'))
        .filter(|i| i.chars().all(|c| c.is_ascii_digit()))
    {
        return format!("(size(result) > {index} ? result[{index}] : {fallback})");
    }
    if value == "result" {
        return format!("(size(result) > 0 ? result : {fallback})");
    }
    problems.push(format!(
        "default({value}, {fallback}): CEL has no missing value to default; kept {value}"
    ));
    value.to_string()
}

/// A receiver for a method call: bare names stay, anything else goes in parentheses.
fn operand(text: &str) -> String {
    let simple = text.chars().all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c));
    if simple { text.to_string() } else { format!("({text})") }
}

/// Whether the text so far ends with something a call or an index applies to (`f`, `x]`, `g()`),
/// not the operator `in` (the other operator words are already `&&`, `||`, `!`).
fn after_operand(out: &str) -> bool {
    let word = out
        .rsplit(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
        .unwrap_or("");
    out.ends_with(')') || out.ends_with(']') || (!word.is_empty() && word != "in")
}

/// Joins tokens with the spacing a person would write.
fn push(out: &mut String, text: &str) {
    let tight_before = [")", "]", ",", "."];
    let tight_after = ["(", "[", "!", "."];
    let needs_space = !out.is_empty()
        && !tight_before.iter().any(|t| text.starts_with(t))
        && !tight_after.iter().any(|t| out.ends_with(t))
        && !((text.starts_with('(') || text.starts_with('[')) && after_operand(out));
    if needs_space {
        out.push(' ');
    }
    out.push_str(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cel(src: &str) -> String {
        let t = translate(src);
        assert!(t.problems.is_empty(), "{src}: {:?}", t.problems);
        crate::analysis::condition::check(&t.cel).unwrap_or_else(|e| panic!("{src} -> {}: {e}", t.cel));
        t.cel
    }

    #[test]
    fn what_argo_users_write_reads_as_cel() {
        assert_eq!(cel("result[0] < 0.01"), "result[0] < 0.01");
        assert_eq!(cel("result[0] >= 0.95"), "result[0] >= 0.95");
        assert_eq!(cel("len(result) == 0"), "size(result) == 0");
        assert_eq!(cel("all(result, # < 1000)"), "result.all(x, x < 1000)");
        assert_eq!(cel("any(result, # > 0.5)"), "result.exists(x, x > 0.5)");
        assert_eq!(cel("none(result, # > 0.5)"), "!result.exists(x, x > 0.5)");
        assert_eq!(cel("isNaN(result[0])"), "(result[0] != result[0])");
        assert_eq!(
            cel("isNaN(result[0]) or result[0] < 0.05"),
            "(result[0] != result[0]) || result[0] < 0.05"
        );
        assert_eq!(cel("result[0] > 0 and result[0] < 5"), "result[0] > 0 && result[0] < 5");
        assert_eq!(
            cel("result[0] > 0 && not (result[0] > 5)"),
            "result[0] > 0 && !(result[0] > 5)"
        );
        assert_eq!(
            cel("default(result[0], 0) < 0.01"),
            "(size(result) > 0 ? result[0] : 0) < 0.01"
        );
        assert_eq!(cel("result.successful == true"), "result.successful == true");
        assert_eq!(cel("asInt(result) == 200"), "int(result) == 200");
        assert_eq!(cel("result == 'ok'"), "result == \"ok\"");
        assert_eq!(
            cel("len(filter(result, # > 1)) < 2"),
            "size(result.filter(x, x > 1)) < 2"
        );
        assert_eq!(cel("result[0] in [200, 204]"), "result[0] in [200, 204]");
    }

    #[test]
    fn what_has_no_translation_is_said() {
        let t = translate("result[0] ** 2 < 4");
        assert!(t.problems[0].contains("power"), "{:?}", t.problems);
        let t = translate("sqrt(result[0]) < 4");
        assert!(t.problems[0].contains("sqrt"), "{:?}", t.problems);
        let t = translate("result[0] < \"open");
        assert!(t.problems[0].contains("not closed"), "{:?}", t.problems);
    }
}
