//! A small MessagePack reader: just enough to walk the metadata note of an AMD code
//! object (`amdhsa.kernels`). Every format of the specification is decoded or skipped;
//! nesting depth and the number of values are capped and no length is trusted before its
//! bytes are present, so any input gives a value or an error in bounded time and memory.

/// Deepest nesting of arrays and maps accepted (the AMD metadata nests 4 levels).
const MAX_DEPTH: usize = 64;
/// Most values decoded from one input (about 50 per kernel in AMD metadata); bounds the
/// memory a crafted input can make the decoder allocate.
const MAX_VALUES: usize = 1_000_000;
/// Most items reserved ahead for one array or map, whatever its header claims.
const MAX_RESERVE: usize = 1024;

/// One decoded MessagePack value, borrowing strings and binaries from the input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    /// `nil`.
    Nil,
    /// `true` / `false`.
    Bool(bool),
    /// Any non-negative integer.
    Uint(u64),
    /// A negative integer.
    Int(i64),
    /// `float 32` or `float 64`.
    Float(f64),
    /// A string's bytes (UTF-8 is not checked here).
    Str(&'a [u8]),
    /// Binary data.
    Bin(&'a [u8]),
    /// An extension value: its type and data.
    Ext(i8, &'a [u8]),
    /// An array.
    Array(Vec<Value<'a>>),
    /// A map, as key-value pairs in encoded order.
    Map(Vec<(Value<'a>, Value<'a>)>),
}

impl<'a> Value<'a> {
    /// The value of the first key that is the string `key`, if this is a map.
    pub(crate) fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if *s == key.as_bytes()))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is valid UTF-8 text.
    pub(crate) fn as_str(&self) -> Option<&'a str> {
        match self {
            Value::Str(s) => std::str::from_utf8(s).ok(),
            _ => None,
        }
    }

    /// The integer, if this is a non-negative integer.
    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Uint(n) => Some(*n),
            _ => None,
        }
    }

    /// The items, if this is an array.
    pub(crate) fn as_array(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// Decodes one value that must span all of `bytes`.
pub(crate) fn decode(bytes: &[u8]) -> Result<Value<'_>, String> {
    let mut reader = Reader {
        bytes,
        pos: 0,
        budget: MAX_VALUES,
    };
    let value = reader.value(0)?;
    if reader.pos != bytes.len() {
        return Err(format!(
            "{} bytes left over after the MessagePack value",
            bytes.len() - reader.pos
        ));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Values that may still be decoded.
    budget: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!(
                "MessagePack value needs {n} bytes at offset {}, but only {} are left",
                self.pos,
                self.bytes.len() - self.pos
            ));
        };
        let out = self.bytes.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(out)
    }

    fn uint(&mut self, n: usize) -> Result<u64, String> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn length(&mut self, n: usize) -> Result<usize, String> {
        usize::try_from(self.uint(n)?).map_err(|_| "MessagePack length overflows".to_owned())
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "MessagePack values nest deeper than {MAX_DEPTH} levels"
            ));
        }
        self.budget = self
            .budget
            .checked_sub(1)
            .ok_or_else(|| format!("more than {MAX_VALUES} MessagePack values"))?;
        let at = self.pos;
        let marker = self.take(1)?.first().copied().unwrap_or_default();
        Ok(match marker {
            0x00..=0x7f => Value::Uint(u64::from(marker)),
            0x80..=0x8f => self.map(usize::from(marker & 0x0f), depth)?,
            0x90..=0x9f => self.array(usize::from(marker & 0x0f), depth)?,
            0xa0..=0xbf => Value::Str(self.take(usize::from(marker & 0x1f))?),
            0xc0 => Value::Nil,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let n = self.length(1 << (marker - 0xc4))?;
                Value::Bin(self.take(n)?)
            }
            0xc7..=0xc9 => {
                let n = self.length(1 << (marker - 0xc7))?;
                self.ext(n)?
            }
            0xca => Value::Float(f64::from(f32::from_bits(self.uint(4)? as u32))),
            0xcb => Value::Float(f64::from_bits(self.uint(8)?)),
            0xcc..=0xcf => Value::Uint(self.uint(1 << (marker - 0xcc))?),
            0xd0..=0xd3 => {
                let bytes = 1usize << (marker - 0xd0);
                let raw = self.uint(bytes)?;
                // Sign-extend from `bytes * 8` bits.
                let shift = 64 - 8 * bytes as u32;
                let n = ((raw << shift) as i64) >> shift;
                match u64::try_from(n) {
                    Ok(n) => Value::Uint(n),
                    Err(_) => Value::Int(n),
                }
            }
            0xd4..=0xd8 => self.ext(1 << (marker - 0xd4))?,
            0xd9..=0xdb => {
                let n = self.length(1 << (marker - 0xd9))?;
                Value::Str(self.take(n)?)
            }
            0xdc | 0xdd => {
                let n = self.length(2 << (marker - 0xdc))?;
                self.array(n, depth)?
            }
            0xde | 0xdf => {
                let n = self.length(2 << (marker - 0xde))?;
                self.map(n, depth)?
            }
            0xe0..=0xff => Value::Int(i64::from(marker as i8)),
            0xc1 => return Err(format!("invalid MessagePack marker 0xc1 at offset {at}")),
        })
    }

    fn ext(&mut self, n: usize) -> Result<Value<'a>, String> {
        let kind = self.take(1)?.first().copied().unwrap_or_default() as i8;
        Ok(Value::Ext(kind, self.take(n)?))
    }

    fn array(&mut self, n: usize, depth: usize) -> Result<Value<'a>, String> {
        // Each item takes at least one byte: never reserve more than what is left.
        let mut items = Vec::with_capacity(n.min(self.bytes.len() - self.pos).min(MAX_RESERVE));
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value<'a>, String> {
        let mut pairs =
            Vec::with_capacity(n.min((self.bytes.len() - self.pos) / 2).min(MAX_RESERVE));
        for _ in 0..n {
            let key = self.value(depth + 1)?;
            let value = self.value(depth + 1)?;
            pairs.push((key, value));
        }
        Ok(Value::Map(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format() {
        let bytes = [
            0xdc, 0x00, 0x11, // array16 of 17
            0x05, 0xe0, // 5, -32
            0xc0, 0xc2, 0xc3, // nil false true
            0xcc, 0xff, // uint8 255
            0xcd, 0x01, 0x00, // uint16 256
            0xd0, 0xfe, // int8 -2
            0xd1, 0x00, 0x10, // int16 16
            0xca, 0x3f, 0x80, 0x00, 0x00, // float32 1.0
            0xa2, b'h', b'i', // fixstr "hi"
            0xd9, 0x01, b'x', // str8 "x"
            0xc4, 0x02, 1, 2, // bin8
            0xd4, 0x07, 0xaa, // fixext1
            0x81, 0xa1, b'k', 0x2a, // {"k": 42}
            0xdc, 0x00, 0x01, 0xc0, // array16 [nil]
            0xc7, 0x00, 0x01, // ext8 empty
        ];
        let value = decode(&bytes).unwrap();
        let items = value.as_array().unwrap();
        assert_eq!(items.len(), 17);
        assert_eq!(items[0], Value::Uint(5));
        assert_eq!(items[1], Value::Int(-32));
        assert_eq!(
            items[2..5],
            [Value::Nil, Value::Bool(false), Value::Bool(true)]
        );
        assert_eq!(items[5], Value::Uint(255));
        assert_eq!(items[6], Value::Uint(256));
        assert_eq!(items[7], Value::Int(-2));
        assert_eq!(items[8], Value::Uint(16));
        assert_eq!(items[9], Value::Float(1.0));
        assert_eq!(items[10].as_str(), Some("hi"));
        assert_eq!(items[11].as_str(), Some("x"));
        assert_eq!(items[12], Value::Bin(&[1, 2]));
        assert_eq!(items[13], Value::Ext(7, &[0xaa]));
        assert_eq!(items[14].get("k").and_then(Value::as_u64), Some(42));
        assert_eq!(items[15], Value::Array(vec![Value::Nil]));
        assert_eq!(items[16], Value::Ext(1, &[]));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[0xc1]).is_err());
        assert!(decode(&[0x92, 0x01]).is_err(), "array cut short");
        assert!(
            decode(&[0xdb, 0xff, 0xff, 0xff, 0xff]).is_err(),
            "huge string"
        );
        assert!(
            decode(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err(),
            "huge array"
        );
        assert!(decode(&[0x01, 0x02]).is_err(), "trailing bytes");
        let deep = vec![0x91; 1000];
        assert!(decode(&deep).unwrap_err().contains("nest deeper"));
        // Two million nils in one array: over the value budget, refused without using
        // memory in proportion.
        let mut many = vec![0xdd, 0x00, 0x1e, 0x84, 0x80];
        many.resize(many.len() + 2_000_000, 0xc0);
        assert!(decode(&many).unwrap_err().contains("more than"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode(&bytes);
        }
    }
}
