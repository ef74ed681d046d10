//! Launch geometry and tensor shapes as small arithmetic over integer params.
//!
//! A manifest says `grid = ["ceil_div(tokens * d, 256)"]`; the runtime needs
//! the number for a call's arguments, and `check` needs the names the text
//! uses. Deliberately tiny: literals, names, `+ - * / %`, parentheses and
//! `ceil_div`, `min`, `max`, evaluated in checked `u64` arithmetic. Anything
//! more would be a language to secure, not a manifest field.

use std::fmt;

/// Longest expression text accepted.
pub const MAX_EXPR_LEN: usize = 1024;
/// Deepest nesting of parentheses and calls accepted.
const MAX_DEPTH: usize = 32;

/// A parsed expression, kept with the text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    source: String,
    node: Node,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Literal(u64),
    Param(String),
    Binary(Box<Node>, BinaryOp, Box<Node>),
    Call(Function, Box<Node>, Box<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    CeilDiv,
    Min,
    Max,
}

/// Why an expression text could not be parsed; `offset` is a byte offset into it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    /// Byte offset in the expression text.
    pub offset: usize,
    /// What was wrong there.
    pub message: String,
}

/// Why an expression could not be evaluated for given arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// A name with no value.
    #[error("`{0}` has no value")]
    UnknownParam(String),
    /// The result left `u64` or went below zero.
    #[error("`{0}` overflows or goes below zero")]
    Overflow(String),
    /// Division or remainder by zero.
    #[error("`{0}` divides by zero")]
    DivisionByZero(String),
}

impl Expr {
    /// Parses an expression text.
    pub fn parse(source: &str) -> Result<Self, ExprError> {
        if source.len() > MAX_EXPR_LEN {
            return Err(ExprError {
                offset: MAX_EXPR_LEN,
                message: format!("expression is longer than {MAX_EXPR_LEN} bytes"),
            });
        }
        let mut parser = Parser {
            text: source.as_bytes(),
            pos: 0,
            depth: 0,
        };
        let node = parser.sum()?;
        parser.skip_space();
        if parser.pos < source.len() {
            return Err(parser.error("expected an operator or the end of the expression"));
        }
        Ok(Self {
            source: source.to_string(),
            node,
        })
    }

    /// An expression that is just a number.
    pub fn literal(value: u64) -> Self {
        Self {
            source: value.to_string(),
            node: Node::Literal(value),
        }
    }

    /// The text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The value, when the expression names no parameter.
    pub fn as_literal(&self) -> Option<u64> {
        self.eval(&|_| None).ok()
    }

    /// Every parameter name used, in order of first use.
    pub fn params(&self) -> Vec<&str> {
        fn walk<'a>(node: &'a Node, out: &mut Vec<&'a str>) {
            match node {
                Node::Literal(_) => {}
                Node::Param(name) => {
                    if !out.contains(&name.as_str()) {
                        out.push(name);
                    }
                }
                Node::Binary(a, _, b) | Node::Call(_, a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.node, &mut out);
        out
    }

    /// Evaluates with `value` giving each parameter's value.
    pub fn eval(&self, value: &dyn Fn(&str) -> Option<u64>) -> Result<u64, EvalError> {
        fn go(
            node: &Node,
            value: &dyn Fn(&str) -> Option<u64>,
            e: &Expr,
        ) -> Result<u64, EvalError> {
            let overflow = || EvalError::Overflow(e.source.clone());
            let by_zero = || EvalError::DivisionByZero(e.source.clone());
            Ok(match node {
                Node::Literal(v) => *v,
                Node::Param(name) => {
                    value(name).ok_or_else(|| EvalError::UnknownParam(name.clone()))?
                }
                Node::Binary(a, op, b) => {
                    let (a, b) = (go(a, value, e)?, go(b, value, e)?);
                    match op {
                        BinaryOp::Add => a.checked_add(b).ok_or_else(overflow)?,
                        BinaryOp::Sub => a.checked_sub(b).ok_or_else(overflow)?,
                        BinaryOp::Mul => a.checked_mul(b).ok_or_else(overflow)?,
                        BinaryOp::Div => a.checked_div(b).ok_or_else(by_zero)?,
                        BinaryOp::Rem => a.checked_rem(b).ok_or_else(by_zero)?,
                    }
                }
                Node::Call(f, a, b) => {
                    let (a, b) = (go(a, value, e)?, go(b, value, e)?);
                    match f {
                        Function::Min => a.min(b),
                        Function::Max => a.max(b),
                        Function::CeilDiv => {
                            if b == 0 {
                                return Err(by_zero());
                            }
                            a.div_ceil(b)
                        }
                    }
                }
            })
        }
        go(&self.node, value, self)
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, message: &str) -> ExprError {
        ExprError {
            offset: self.pos,
            message: message.to_string(),
        }
    }

    fn skip_space(&mut self) {
        while self.text.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.text.get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<(), ExprError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected `{}`", byte as char)))
        }
    }

    fn sum(&mut self) -> Result<Node, ExprError> {
        let mut left = self.product()?;
        loop {
            let op = match self.peek() {
                Some(b'+') => BinaryOp::Add,
                Some(b'-') => BinaryOp::Sub,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.product()?;
            left = Node::Binary(Box::new(left), op, Box::new(right));
        }
    }

    fn product(&mut self) -> Result<Node, ExprError> {
        let mut left = self.atom()?;
        loop {
            let op = match self.peek() {
                Some(b'*') => BinaryOp::Mul,
                Some(b'/') => BinaryOp::Div,
                Some(b'%') => BinaryOp::Rem,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.atom()?;
            left = Node::Binary(Box::new(left), op, Box::new(right));
        }
    }

    fn atom(&mut self) -> Result<Node, ExprError> {
        match self.peek() {
            Some(b'(') => {
                self.pos += 1;
                let node = self.nested(Self::sum)?;
                self.expect(b')')?;
                Ok(node)
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.pos;
                while self
                    .text
                    .get(self.pos)
                    .is_some_and(|c| c.is_ascii_digit() || *c == b'_')
                {
                    self.pos += 1;
                }
                let digits: String = self.text[start..self.pos]
                    .iter()
                    .filter(|c| **c != b'_')
                    .map(|c| *c as char)
                    .collect();
                digits.parse().map(Node::Literal).map_err(|_| ExprError {
                    offset: start,
                    message: "number does not fit in 64 bits".into(),
                })
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.pos;
                while self
                    .text
                    .get(self.pos)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    self.pos += 1;
                }
                let name = String::from_utf8_lossy(&self.text[start..self.pos]).into_owned();
                if self.peek() != Some(b'(') {
                    return Ok(Node::Param(name));
                }
                let function = match name.as_str() {
                    "ceil_div" => Function::CeilDiv,
                    "min" => Function::Min,
                    "max" => Function::Max,
                    _ => {
                        return Err(ExprError {
                            offset: start,
                            message: format!(
                                "unknown function `{name}`; the functions are ceil_div, min, max"
                            ),
                        });
                    }
                };
                self.pos += 1;
                let a = self.nested(Self::sum)?;
                self.expect(b',')?;
                let b = self.nested(Self::sum)?;
                self.expect(b')')?;
                Ok(Node::Call(function, Box::new(a), Box::new(b)))
            }
            Some(_) => Err(self.error("expected a number, a parameter name, a function or `(`")),
            None => Err(self.error("expression ends too early")),
        }
    }

    fn nested(
        &mut self,
        parse: fn(&mut Self) -> Result<Node, ExprError>,
    ) -> Result<Node, ExprError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(&format!("nested deeper than {MAX_DEPTH} levels")));
        }
        self.depth += 1;
        let node = parse(self);
        self.depth -= 1;
        node
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(text: &str, params: &[(&str, u64)]) -> Result<u64, EvalError> {
        Expr::parse(text)
            .unwrap()
            .eval(&|name| params.iter().find(|(n, _)| *n == name).map(|(_, v)| *v))
    }

    #[test]
    fn precedence_and_functions() {
        assert_eq!(eval("2 + 3 * 4", &[]), Ok(14));
        assert_eq!(eval("(2 + 3) * 4", &[]), Ok(20));
        assert_eq!(eval("10 - 4 - 3", &[]), Ok(3));
        assert_eq!(
            eval("ceil_div(tokens * d, 256)", &[("tokens", 3), ("d", 100)]),
            Ok(2)
        );
        assert_eq!(eval("min(max(a, 7), 9) % 4", &[("a", 2)]), Ok(3));
        assert_eq!(eval("1_024", &[]), Ok(1024));
    }

    #[test]
    fn arithmetic_errors_are_errors_not_wraparound() {
        assert!(matches!(eval("1 - 2", &[]), Err(EvalError::Overflow(_))));
        assert!(matches!(
            eval("a / b", &[("a", 1), ("b", 0)]),
            Err(EvalError::DivisionByZero(_))
        ));
        assert!(matches!(
            eval("ceil_div(1, 0)", &[]),
            Err(EvalError::DivisionByZero(_))
        ));
        assert!(matches!(
            eval("18446744073709551615 * 2", &[]),
            Err(EvalError::Overflow(_))
        ));
        assert!(matches!(eval("x", &[]), Err(EvalError::UnknownParam(_))));
    }

    #[test]
    fn parse_errors_point_at_the_problem() {
        assert_eq!(Expr::parse("a +").unwrap_err().offset, 3);
        assert_eq!(Expr::parse("a $ b").unwrap_err().offset, 2);
        assert_eq!(Expr::parse("pow(a, 2)").unwrap_err().offset, 0);
        assert!(Expr::parse(&"(".repeat(100)).is_err());
        assert!(Expr::parse(&"1+".repeat(1000)).is_err());
        assert!(Expr::parse("99999999999999999999999").is_err());
    }

    #[test]
    fn params_in_order_of_first_use() {
        let e = Expr::parse("ceil_div(tokens * d, 256) + d").unwrap();
        assert_eq!(e.params(), vec!["tokens", "d"]);
        assert_eq!(Expr::parse("4 * 64").unwrap().as_literal(), Some(256));
    }
}
