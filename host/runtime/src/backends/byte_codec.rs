//! A small binary codec for the stores' snapshots (the lexical index, hit copies):
//! little-endian integers and length-prefixed UTF-8, every read bounds-checked so bytes cut
//! short or made up give [`Malformed`], never a panic or an allocation they ask for.

/// Bytes that do not read back: what was wrong with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// Appends values to a buffer.
#[derive(Debug, Default)]
pub struct ByteWriter(Vec<u8>);

impl ByteWriter {
    /// An empty buffer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    /// A `u32`.
    pub fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    /// A `u64`.
    pub fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    /// A count or length, as a `u32` (saturating).
    pub fn count(&mut self, count: usize) {
        self.u32(u32::try_from(count).unwrap_or(u32::MAX));
    }

    /// A string: its length, then its bytes.
    pub fn str(&mut self, text: &str) {
        self.count(text.len());
        self.0.extend_from_slice(text.as_bytes());
    }

    /// What was written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Reads values back, in the order they were written.
#[derive(Debug)]
pub struct ByteReader<'a>(&'a [u8]);

impl<'a> ByteReader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.0.len() < n {
            return Err(Malformed("cut short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    /// A `u32`.
    pub fn u32(&mut self) -> Result<u32, Malformed> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes(bytes.try_into().expect("four bytes")))
    }

    /// A `u64`.
    pub fn u64(&mut self) -> Result<u64, Malformed> {
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("eight bytes")))
    }

    /// A count of items of at least `item_bytes` each, refused when the bytes left cannot
    /// hold that many (so a made-up count never allocates).
    pub fn count(&mut self, item_bytes: usize) -> Result<usize, Malformed> {
        let count = self.u32()? as usize;
        if count.saturating_mul(item_bytes) > self.0.len() {
            return Err(Malformed("a count larger than the bytes left"));
        }
        Ok(count)
    }

    /// A string [`ByteWriter::str`] wrote.
    pub fn str(&mut self) -> Result<&'a str, Malformed> {
        let len = self.count(1)?;
        std::str::from_utf8(self.take(len)?).map_err(|_| Malformed("not UTF-8"))
    }

    /// Ok when every byte was read.
    pub fn finish(self) -> Result<(), Malformed> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Malformed("bytes past the end"))
        }
    }
}
