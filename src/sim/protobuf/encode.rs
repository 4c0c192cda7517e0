//! Writing protobuf: the wire format's few value kinds, for the responses that clients ask for in
//! protobuf and cannot take in JSON.

#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn key(&mut self, field: u64, wire_type: u64) {
        self.varint((field << 3) | wire_type);
    }

    pub fn bytes(&mut self, field: u64, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    pub fn string(&mut self, field: u64, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    pub fn message(&mut self, field: u64, m: Writer) {
        self.bytes(field, &m.buf);
    }

    pub fn bool(&mut self, field: u64, b: bool) {
        self.key(field, 0);
        self.varint(u64::from(b));
    }

    /// An `int64`: negative values take ten bytes, as two's complement.
    pub fn int64(&mut self, field: u64, v: i64) {
        self.key(field, 0);
        self.varint(v as u64);
    }

    pub fn double(&mut self, field: u64, v: f64) {
        self.key(field, 1);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_wire_format() {
        let mut w = Writer::default();
        w.string(1, "2.0");
        w.int64(11, 300);
        w.int64(12, -1);
        w.bool(16, true);
        w.double(7, 1.5);
        let mut inner = Writer::default();
        inner.string(1, "a");
        w.message(25, inner);
        let mut want = vec![0x0a, 3, b'2', b'.', b'0', 0x58, 0xac, 0x02, 0x60];
        want.extend([0xff; 9]);
        want.push(0x01);
        want.extend([0x80, 0x01, 0x01, 0x39]);
        want.extend(1.5f64.to_le_bytes());
        want.extend([0xca, 0x01, 3, 0x0a, 1, b'a']);
        assert_eq!(w.into_bytes(), want);
    }
}
