//! 16-bit float encodings, for filling and reading f16 and bf16 tensors
//! (round to nearest, ties to even; NaN stays NaN, overflow becomes
//! infinity), without a dependency for two small functions each.

/// The IEEE binary16 nearest to `value`.
pub fn f16_from_f32(value: f32) -> u16 {
    let bits = value.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exponent = ((bits >> 23) & 0xff) as i32;
    let mantissa = bits & 0x7f_ffff;
    if exponent == 0xff {
        let nan = if mantissa != 0 { 0x200 } else { 0 };
        return sign | 0x7c00 | nan;
    }
    let e = exponent - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        // Subnormal: the value in units of 2^-24, rounded to nearest even.
        let m = mantissa | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        return sign | ((m + half - 1 + ((m >> shift) & 1)) >> shift) as u16;
    }
    let mut half_bits = ((e as u32) << 10) | (mantissa >> 13);
    let rest = mantissa & 0x1fff;
    if rest > 0x1000 || (rest == 0x1000 && half_bits & 1 == 1) {
        half_bits += 1; // may carry into the exponent, up to infinity: still right
    }
    sign | half_bits as u16
}

/// The value of IEEE binary16 `bits`.
pub fn f32_from_f16(bits: u16) -> f32 {
    let sign = (u32::from(bits) & 0x8000) << 16;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    match exponent {
        0 => {
            let magnitude = mantissa as f32 * (1.0 / 16_777_216.0); // 2^-24
            if sign != 0 { -magnitude } else { magnitude }
        }
        0x1f => f32::from_bits(sign | 0x7f80_0000 | (mantissa << 13)),
        _ => f32::from_bits(sign | ((exponent + 112) << 23) | (mantissa << 13)),
    }
}

/// The bfloat16 nearest to `value`.
pub fn bf16_from_f32(value: f32) -> u16 {
    let bits = value.to_bits();
    if value.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

/// The value of bfloat16 `bits`.
pub fn f32_from_bf16(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_f16_survives_a_round_trip() {
        for bits in 0..=u16::MAX {
            let value = f32_from_f16(bits);
            if value.is_nan() {
                assert!(f32_from_f16(f16_from_f32(value)).is_nan());
            } else {
                assert_eq!(f16_from_f32(value), bits, "{bits:#06x} = {value}");
            }
        }
    }

    #[test]
    fn f16_rounding_overflow_and_subnormals() {
        assert_eq!(f16_from_f32(1.0), 0x3c00);
        assert_eq!(f16_from_f32(65504.0), 0x7bff);
        assert_eq!(f16_from_f32(65520.0), 0x7c00, "rounds up to infinity");
        assert_eq!(f16_from_f32(-1e9), 0xfc00);
        assert_eq!(f16_from_f32(1e-8), 0, "below half the smallest subnormal");
        assert_eq!(f16_from_f32(5.960_464_5e-8), 1, "the smallest subnormal");
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1).
        assert_eq!(f16_from_f32(1.0 + 1.0 / 2048.0), 0x3c00);
        assert_eq!(f16_from_f32(1.0 + 3.0 / 2048.0), 0x3c02);
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(bf16_from_f32(1.0), 0x3f80);
        assert_eq!(f32_from_bf16(bf16_from_f32(3.140_625)), 3.140_625);
        assert_eq!(
            bf16_from_f32(f32::from_bits(0x3f80_8000)),
            0x3f80,
            "tie to even"
        );
        assert_eq!(
            bf16_from_f32(f32::from_bits(0x3f81_8000)),
            0x3f82,
            "tie to even"
        );
        assert!(f32_from_bf16(bf16_from_f32(f32::NAN)).is_nan());
        assert_eq!(f32_from_bf16(bf16_from_f32(f32::INFINITY)), f32::INFINITY);
    }
}
