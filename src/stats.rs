//! Small-sample statistics of the comparisons (`bench fidelity`, `compare`): mean and sample
//! standard deviation, Welch's and the paired t-test, and the Student t distribution they need
//! (through the regularised incomplete beta function, so no statistics crate is needed).

/// Mean and sample standard deviation.
pub fn mean_std(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = if x.len() > 1 { x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// Welch's two-sided t-test: (t, degrees of freedom, p-value). Equal constant samples give p = 1;
/// fewer than two samples on a side give NaN (no variance, no test).
pub fn welch(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    if a.len() < 2 || b.len() < 2 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let (ma, sa) = mean_std(a);
    let (mb, sb) = mean_std(b);
    let (va, vb) = (sa * sa / a.len() as f64, sb * sb / b.len() as f64);
    if va + vb == 0.0 {
        // No spread on either side: equal means are certainly equal, different ones certainly not.
        return if ma == mb { (0.0, f64::NAN, 1.0) } else { ((ma - mb).signum() * f64::INFINITY, f64::NAN, 0.0) };
    }
    let t = (ma - mb) / (va + vb).sqrt();
    let df = (va + vb).powi(2) / (va * va / (a.len() as f64 - 1.0) + vb * vb / (b.len() as f64 - 1.0));
    (t, df, student_t_two_sided(t, df))
}

/// Two-sided p-value of Student's t with `df` degrees of freedom: `P(|T| >= |t|)`, which is
/// the regularised incomplete beta function `I_{df/(df+t^2)}(df/2, 1/2)`.
pub fn student_t_two_sided(t: f64, df: f64) -> f64 {
    incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
}

/// The regularised incomplete beta function `I_x(a, b)` (continued fraction, Lentz's method).
pub fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - incomplete_beta(b, a, 1.0 - x);
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let tiny = 1e-300;
    let (mut c, mut d) = (1.0, 1.0 - (a + b) * x / (a + 1.0));
    d = if d.abs() < tiny { tiny } else { d };
    d = 1.0 / d;
    let mut f = d;
    for m in 1..300 {
        let m = m as f64;
        for numerator in [
            m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0)),
        ] {
            d = 1.0 + numerator * d;
            d = if d.abs() < tiny { tiny } else { d };
            c = 1.0 + numerator / c;
            c = if c.abs() < tiny { tiny } else { c };
            d = 1.0 / d;
            f *= c * d;
        }
        if (c * d - 1.0).abs() < 1e-15 {
            break;
        }
    }
    ln_front.exp() * f / a
}

/// `ln Γ(x)` for x > 0 (Lanczos, g = 7, n = 9).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9, 676.520_368_121_885_1, -1_259.139_216_722_402_8, 771.323_428_777_653_1,
        -176.615_029_162_140_6, 12.507_343_278_686_905, -0.138_571_095_265_720_12, 9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Paired two-sided t-test of `a[i] - b[i]`: (mean difference, its sample std, p). Fewer than
/// two pairs: p is NaN (no test); all differences equal: p = 1 if they are 0, else 0.
pub fn paired_t(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let (m, sd) = mean_std(&d);
    if d.len() < 2 {
        return (m, sd, f64::NAN);
    }
    if sd == 0.0 {
        return (m, sd, if m == 0.0 { 1.0 } else { 0.0 });
    }
    let df = d.len() as f64 - 1.0;
    let t = m / (sd / (d.len() as f64).sqrt());
    (m, sd, student_t_two_sided(t, df))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn student_t_p_values_match_numeric_integration() {
        // Two-sided p of t with df degrees of freedom; reference values by direct numerical
        // integration of Student's density (2e6-point midpoint rule, Python's math.gamma).
        let p = student_t_two_sided;
        assert!((p(2.0, 5.0) - 0.101_939_478_829_856).abs() < 1e-9, "{}", p(2.0, 5.0));
        assert!((p(2.776_445, 4.0) - 0.050_000_005_382).abs() < 1e-9, "{}", p(2.776_445, 4.0));
        assert!((p(1.0, 1.0) - 0.5).abs() < 1e-9);
        assert!((p(0.0, 3.0) - 1.0).abs() < 1e-12);
        // Tables of Student's t: t = 2 with 10 degrees of freedom, two-sided p = 0.0734;
        // t = 2.228 is the 97.5 % quantile at df 10; a large df approaches the normal (p = 0.0455).
        assert!((p(2.0, 10.0) - 0.073_388).abs() < 1e-5, "{}", p(2.0, 10.0));
        assert!((p(2.228, 10.0) - 0.05).abs() < 1e-4, "{}", p(2.228, 10.0));
        assert!((p(-2.0, 1e6) - 0.045_500).abs() < 1e-5, "{}", p(-2.0, 1e6));
    }

    #[test]
    fn welch_on_known_samples() {
        // [1, 2, 3, 4] vs [2, 4, 6, 8, 10]: t = -3.5 / sqrt(5/12 + 2), Welch-Satterthwaite df,
        // p by numerical integration as above.
        let (t, df, p) = welch(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 6.0, 8.0, 10.0]);
        assert!((t + 2.251_436_323_159_37).abs() < 1e-9 && (df - 5.520_787_746_170_68).abs() < 1e-9, "t {t} df {df}");
        assert!((p - 0.069_133_593_192_394).abs() < 1e-8, "p {p}");
        assert_eq!(welch(&[3.0, 3.0], &[3.0, 3.0]).2, 1.0);
        assert!(welch(&[3.0], &[4.0, 5.0]).2.is_nan(), "one seed has no variance: no test");
        let (t, _, p) = welch(&[3.0, 3.0], &[4.0, 4.0]);
        assert_eq!((t, p), (f64::NEG_INFINITY, 0.0), "constant samples with different means");
    }

    #[test]
    fn paired_t_on_known_differences() {
        // Differences [1, 2, 3, 4]: mean 2.5, sd sqrt(5/3), t = 2.5 / (sd / 2) = 3.872983, df 3;
        // two-sided p by numerical integration of Student's density (as above): 0.030466.
        let (d, sd, p) = paired_t(&[11.0, 12.0, 13.0, 14.0], &[10.0, 10.0, 10.0, 10.0]);
        assert!((d - 2.5).abs() < 1e-12 && (sd - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((p - 0.030_466).abs() < 1e-5, "p {p}");
        assert_eq!(paired_t(&[1.0, 2.0], &[1.0, 2.0]).2, 1.0, "identical pairs");
        assert!(paired_t(&[1.0], &[2.0]).2.is_nan(), "one pair: no test");
        // A paired design sees a shift that Welch cannot see beside the spread between seeds.
        let (a, b) = ([20.0, 25.0, 30.0], [19.0, 24.1, 29.0]);
        assert!(paired_t(&a, &b).2 < 0.05 && welch(&a, &b).2 > 0.5);
    }
}
