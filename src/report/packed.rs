//! Compact typed arrays for large numeric data in the page.
//!
//! A JSON array of 20,000 floats costs about ten bytes a number and a slow
//! parse; the same numbers as little-endian bytes in base64 cost 5.3 bytes
//! (f32) and decode straight into a `Float32Array`. The page's
//! `GG.unpack()` turns a [`Packed`] back into the matching typed array.

use base64::Engine;
use serde::{Deserialize, Serialize};

/// The element type of a packed array, named as in the page's typed arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    U8,
    U16,
    I16,
    U32,
    I32,
    F32,
    F64,
}

/// A numeric array serialised as `{"dtype": "f32", "len": n, "b64": "…"}`,
/// little-endian; or, from [`DEFLATE_FROM`] bytes on where it comes out
/// shorter, as `{"dtype", "len", "z85": "…"}`: the bytes in byte planes
/// (every value's first byte, then every second byte, …), raw-deflated and
/// written in base85 (the embeddings' [`super::embeddings::Deflated`]
/// encoding). The page inflates every `z85` array once before it starts
/// (`GG.inflatePacked`), so views still read them synchronously.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Packed {
    pub dtype: DType,
    pub len: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub z85: Option<String>,
}

/// Arrays this long (in bytes) or longer are deflated when that is shorter.
pub const DEFLATE_FROM: usize = 2048;

impl DType {
    /// Bytes per element.
    pub fn width(self) -> usize {
        match self {
            DType::U8 => 1,
            DType::U16 | DType::I16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::F64 => 8,
        }
    }
}

impl Packed {
    fn from_bytes(dtype: DType, len: usize, bytes: &[u8]) -> Packed {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        if bytes.len() >= DEFLATE_FROM {
            let w = dtype.width();
            let mut planes = Vec::with_capacity(bytes.len());
            for p in 0..w {
                planes.extend(bytes.iter().skip(p).step_by(w));
            }
            let z85 = super::embeddings::base85::encode(&miniz_oxide::deflate::compress_to_vec(
                &planes, 9,
            ));
            if z85.len() < b64.len() {
                return Packed {
                    dtype,
                    len,
                    b64: None,
                    z85: Some(z85),
                };
            }
        }
        Packed {
            dtype,
            len,
            b64: Some(b64),
            z85: None,
        }
    }

    pub fn u8(v: &[u8]) -> Packed {
        Packed::from_bytes(DType::U8, v.len(), v)
    }

    pub fn u16(v: &[u16]) -> Packed {
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Packed::from_bytes(DType::U16, v.len(), &b)
    }

    pub fn i16(v: &[i16]) -> Packed {
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Packed::from_bytes(DType::I16, v.len(), &b)
    }

    pub fn u32(v: &[u32]) -> Packed {
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Packed::from_bytes(DType::U32, v.len(), &b)
    }

    pub fn i32(v: &[i32]) -> Packed {
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Packed::from_bytes(DType::I32, v.len(), &b)
    }

    pub fn f32(v: &[f32]) -> Packed {
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Packed::from_bytes(DType::F32, v.len(), &b)
    }

    /// For integers up to 2^53 (byte counts, parameter counts), which a
    /// JavaScript number holds exactly.
    pub fn f64(v: &[f64]) -> Packed {
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Packed::from_bytes(DType::F64, v.len(), &b)
    }

    /// The values as `f64`, whatever the element type (every type here fits
    /// exactly); for consumers outside the page, such as uploads.
    pub fn to_f64(&self) -> Vec<f64> {
        let b = self.bytes();
        macro_rules! read {
            ($t:ty) => {
                b.chunks_exact(size_of::<$t>())
                    .map(|c| {
                        let mut a = [0u8; size_of::<$t>()];
                        a.copy_from_slice(c);
                        f64::from(<$t>::from_le_bytes(a))
                    })
                    .collect()
            };
        }
        match self.dtype {
            DType::U8 => b.iter().map(|&x| f64::from(x)).collect(),
            DType::U16 => read!(u16),
            DType::I16 => read!(i16),
            DType::U32 => read!(u32),
            DType::I32 => read!(i32),
            DType::F32 => read!(f32),
            DType::F64 => read!(f64),
        }
    }

    /// The raw little-endian bytes, decoded again (empty when damaged).
    pub fn bytes(&self) -> Vec<u8> {
        if let Some(b64) = &self.b64 {
            return base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_default();
        }
        let planes = self
            .z85
            .as_deref()
            .and_then(super::embeddings::base85::decode)
            .and_then(|z| miniz_oxide::inflate::decompress_to_vec(&z).ok())
            .unwrap_or_default();
        let w = self.dtype.width();
        if planes.len() != self.len * w {
            return Vec::new();
        }
        let mut b = vec![0u8; planes.len()];
        for (p, plane) in planes.chunks_exact(self.len.max(1)).enumerate() {
            for (i, &x) in plane.iter().enumerate() {
                b[i * w + p] = x;
            }
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_round_trip_as_little_endian_bytes() {
        let p = Packed::f32(&[1.0, -2.5]);
        assert_eq!(p.len, 2);
        let b = p.bytes();
        assert_eq!(f32::from_le_bytes(b[4..8].try_into().unwrap()), -2.5);
        let p = Packed::i32(&[-1, 7]);
        assert_eq!(p.bytes(), [255, 255, 255, 255, 7, 0, 0, 0]);
        assert_eq!(Packed::i32(&[-1, 7]).to_f64(), [-1.0, 7.0]);
        assert_eq!(Packed::f32(&[0.5, -2.5]).to_f64(), [0.5, -2.5]);
        assert_eq!(Packed::u8(&[255]).to_f64(), [255.0]);
        assert_eq!(Packed::f64(&[1e15]).to_f64(), [1e15]);
        let json = serde_json::to_string(&Packed::u8(&[1, 2, 3])).unwrap();
        assert_eq!(json, r#"{"dtype":"u8","len":3,"b64":"AQID"}"#);
    }

    #[test]
    fn long_arrays_are_deflated_in_byte_planes_and_come_back() {
        let v: Vec<f32> = (0..5000).map(|i| (i % 17) as f32 * 0.25).collect();
        let p = Packed::f32(&v);
        assert!(p.b64.is_none() && p.z85.is_some());
        let plain = (v.len() * 4).div_ceil(3) * 4;
        assert!(
            p.z85.as_ref().unwrap().len() * 4 < plain,
            "a repeating series deflates"
        );
        let back: Vec<f32> = p.to_f64().iter().map(|&x| x as f32).collect();
        assert_eq!(back, v);
        let u = Packed::u16(&(0..3000).map(|i| i as u16).collect::<Vec<_>>());
        assert_eq!(u.to_f64()[2999], 2999.0);
        // Noise does not deflate, but base85 is still shorter than base64.
        let mut s = 7u32;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 24) as u8
            })
            .collect();
        assert_eq!(Packed::u8(&noise).bytes(), noise);
        assert!(
            Packed::u8(&noise[..100]).b64.is_some(),
            "short arrays stay base64"
        );
        // Damage gives no bytes, not a panic.
        let mut d = p.clone();
        d.z85 = Some("!!!".into());
        assert!(d.bytes().is_empty());
    }
}
