//! Elementary functions from IEEE-754 basic operations only, so that every value that decides
//! a run's result is the same bit for bit on every x86-64 machine.
//!
//! Why: `f64::ln`, `exp`, `powf`, `sin` and `cos` call the system libm, and glibc picks
//! different implementations by CPU feature (its FMA variants round some results differently),
//! so a class prior, a cloud size, a sampling weight or a cosine learning rate could differ in
//! the last bit between two machines and a run would then drift. Addition, subtraction,
//! multiplication, division and square root are correctly rounded by IEEE-754 on every CPU,
//! and Rust never fuses a multiply-add on its own, so the functions below (range reduction plus
//! fixed polynomials) give identical bits everywhere. Accuracy is a few ulp, far below anything
//! that matters here; the tests compare with libm.
use std::f64::consts::{FRAC_PI_2, LN_2, PI, TAU};

/// `2^k` for an integer `k` in the normal range, built from its bit pattern.
fn pow2(k: i64) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// Natural logarithm (x > 0; 0 gives -inf, negative or NaN gives NaN).
pub fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    // x = m 2^e with m in [sqrt(1/2), sqrt(2)).
    let (mut m, mut e) = (x, 0i64);
    if m < f64::MIN_POSITIVE {
        m *= pow2(54);
        e -= 54;
    }
    let bits = m.to_bits();
    e += ((bits >> 52) & 0x7ff) as i64 - 1023;
    m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | (1023u64 << 52));
    if m > std::f64::consts::SQRT_2 {
        m /= 2.0;
        e += 1;
    }
    // ln m = 2 atanh(s), s = (m - 1)/(m + 1), |s| < 0.172: the odd series to s^31.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = s;
    for k in 1..16 {
        term *= s2;
        sum += term / (2 * k + 1) as f64;
    }
    2.0 * sum + e as f64 * LN_2
}

/// `e^x`.
pub fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.7 {
        return f64::INFINITY;
    }
    if x < -745.2 {
        return 0.0;
    }
    // x = k ln2 + r, |r| <= ln2 / 2 (Cody-Waite: ln2 in two parts, the first with trailing zero
    // bits so that k * LN2_HI is exact); Taylor series of e^r to r^20.
    // fdlibm's constants as fdlibm writes them (the digits past f64's precision are its own).
    #[allow(clippy::excessive_precision)]
    const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-1;
    #[allow(clippy::excessive_precision)]
    const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
    let k = (x / LN_2).round();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 1..21 {
        term *= r / n as f64;
        sum += term;
    }
    // Scale in two steps so that 2^k never leaves the normal range on the way.
    let k = k as i64;
    let half = k / 2;
    sum * pow2(half) * pow2(k - half)
}

/// `x^y` for x > 0 (as `exp(y ln x)`); `x^0 = 1`, `0^y = 0` for y > 0.
pub fn pow(x: f64, y: f64) -> f64 {
    if y == 0.0 {
        return 1.0;
    }
    if x == 0.0 && y > 0.0 {
        return 0.0;
    }
    exp(y * ln(x))
}

/// `sin x` for |x| up to about 1e6 (range reduction by a rounded multiple of 2 pi).
pub fn sin(x: f64) -> f64 {
    let k = (x / TAU).round();
    let mut r = x - k * TAU;
    // sin(pi - r) = sin r: fold into [-pi/2, pi/2].
    if r > FRAC_PI_2 {
        r = PI - r;
    } else if r < -FRAC_PI_2 {
        r = -PI - r;
    }
    let r2 = r * r;
    let mut term = r;
    let mut sum = r;
    for n in 1..13 {
        term *= -r2 / ((2 * n) * (2 * n + 1)) as f64;
        sum += term;
    }
    sum
}

/// `cos x = sin(x + pi/2)`.
pub fn cos(x: f64) -> f64 {
    sin(x + FRAC_PI_2)
}

/// A standard normal draw (Box-Muller from two uniforms in (0, 1]).
pub fn standard_normal<R: rand::Rng>(rng: &mut R) -> f64 {
    let u1 = 1.0 - rng.gen::<f64>();
    let u2 = rng.gen::<f64>();
    (-2.0 * ln(u1)).sqrt() * cos(TAU * u2)
}

/// A Gamma(shape, 1) draw (Marsaglia and Tsang 2000; shape < 1 through `G(shape + 1) U^(1/shape)`).
pub fn gamma<R: rand::Rng>(rng: &mut R, shape: f64) -> f64 {
    if shape < 1.0 {
        let u = 1.0 - rng.gen::<f64>();
        return gamma(rng, shape + 1.0) * pow(u, 1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = standard_normal(rng);
        let v = 1.0 + c * x;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u = 1.0 - rng.gen::<f64>();
        if ln(u) < 0.5 * x * x + d - d * v + d * ln(v) {
            return d * v;
        }
    }
}

/// A Beta(a, b) draw (mixup's lambda). Beta(1, 1) is the uniform distribution: one uniform draw.
pub fn beta<R: rand::Rng>(rng: &mut R, a: f64, b: f64) -> f64 {
    if a == 1.0 && b == 1.0 {
        return rng.gen::<f64>();
    }
    let x = gamma(rng, a);
    let y = gamma(rng, b);
    x / (x + y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) {
        assert!((a - b).abs() <= rel * b.abs().max(1e-300) || a == b, "{a} vs libm {b}");
    }

    #[test]
    fn agree_with_libm() {
        for &x in &[1e-300, 1e-10, 0.1, 0.5, 0.7, 1.0, 1.5, 2.0, 10.0, 50.0, 5000.0, 1e10, 1e300] {
            close(ln(x), x.ln(), 1e-14);
        }
        assert_eq!(ln(1.0), 0.0);
        for &x in &[-700.0, -20.0, -1.0, -1e-9, 0.0, 0.3, 1.0, 5.5, 100.0, 700.0] {
            close(exp(x), x.exp(), 1e-14);
        }
        for &(x, y) in &[(0.9999f64, 5000.0), (0.999, 50.0), (5000.0, -0.25), (2.0, 0.5), (10.0, 1.0 / 3.0)] {
            close(pow(x, y), x.powf(y), 1e-12);
        }
        for i in -200..=200 {
            let x = i as f64 * 0.173;
            // A few ulp of the reduced argument (|x| up to 35 here).
            assert!((sin(x) - x.sin()).abs() < 1e-14, "sin {x}");
            assert!((cos(x) - x.cos()).abs() < 1e-14, "cos {x}");
        }
    }

    #[test]
    fn special_values() {
        assert!(ln(-1.0).is_nan() && ln(0.0) == f64::NEG_INFINITY);
        assert_eq!(exp(-800.0), 0.0);
        assert_eq!(exp(800.0), f64::INFINITY);
        assert_eq!(pow(0.0, 2.0), 0.0);
        assert_eq!(pow(3.0, 0.0), 1.0);
    }

    #[test]
    fn beta_and_normal_moments() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let n = 200_000;
        for (a, b) in [(1.0, 1.0), (0.4, 0.4), (2.0, 5.0)] {
            let xs: Vec<f64> = (0..n).map(|_| beta(&mut rng, a, b)).collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
            let (m, v) = (a / (a + b), a * b / ((a + b) * (a + b) * (a + b + 1.0)));
            assert!((mean - m).abs() < 4e-3 && (var - v).abs() < 4e-3, "Beta({a},{b}): {mean} {var} vs {m} {v}");
            assert!(xs.iter().all(|x| (0.0..=1.0).contains(x)));
        }
        let zs: Vec<f64> = (0..n).map(|_| standard_normal(&mut rng)).collect();
        let mean = zs.iter().sum::<f64>() / n as f64;
        let var = zs.iter().map(|z| z * z).sum::<f64>() / n as f64 - mean * mean;
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.01, "{mean} {var}");
    }
}
