//! Small-sample statistics: mean and sample standard deviation, the 95 % Student-t interval of a
//! table cell's mean over its seeds ([`Estimate`], for the report's verdicts), Welch's and the
//! paired t-test (`bench fidelity`, `compare`), and the Student t distribution they need (through
//! the regularised incomplete beta function, so no statistics crate is needed; the tests pin them
//! to published table values).

/// Mean and sample standard deviation.
pub fn mean_std(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = if x.len() > 1 { x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// `mean ± std` of `x` with `digits` decimals (the sample standard deviation).
pub fn mean_pm_std(x: &[f64], digits: usize) -> String {
    let (m, s) = mean_std(x);
    format!("{m:.digits$} ± {s:.digits$}")
}

/// Mean of `v` (`None` when empty).
pub fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Sample standard deviation (divisor n - 1) of `v`; `None` below two values.
pub fn sample_std(v: &[f64]) -> Option<f64> {
    let m = mean(v)?;
    (v.len() >= 2).then(|| (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt())
}

/// The mean of a cell's seeds and how far it can be trusted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// Number of values (seeds with a result).
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation; `None` for one value.
    pub std: Option<f64>,
    /// Half-width of the 95 % interval of the mean, `t(0.975, n - 1) · std / √n`; `None` for one
    /// value (no spread is known, so no interval).
    pub half_width: Option<f64>,
}

impl Estimate {
    /// The estimate of `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Estimate> {
        let mean = mean(values)?;
        let n = values.len();
        let std = sample_std(values);
        let half_width = std.map(|s| student_t_quantile(0.975, (n - 1) as f64) * s / (n as f64).sqrt());
        Some(Estimate { n, mean, std, half_width })
    }

    /// The 95 % interval `(low, high)` of the mean, when there is one.
    pub fn interval(&self) -> Option<(f64, f64)> {
        self.half_width.map(|h| (self.mean - h, self.mean + h))
    }
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

/// The `q` quantile of Student's t with `df` degrees of freedom, for `q` in (0.5, 1): the `t`
/// whose two-sided p-value is `2 (1 - q)`, found by bisection on `x = df / (df + t²)`, on which
/// the p-value `I_x(df/2, 1/2)` increases monotonically from 0 to 1.
pub fn student_t_quantile(q: f64, df: f64) -> f64 {
    assert!(q > 0.5 && q < 1.0 && df > 0.0, "student_t_quantile({q}, {df}): needs 0.5 < q < 1 and df > 0");
    let p = 2.0 * (1.0 - q);
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    // 200 halvings take the bracket below any f64 spacing in (0, 1).
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if incomplete_beta(df / 2.0, 0.5, mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let x = 0.5 * (lo + hi);
    (df * (1.0 - x) / x).sqrt()
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
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
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
    fn mean_pm_std_writes_the_sample_std() {
        // (1, 3): mean 2, sample variance ((1-2)^2 + (3-2)^2) / 1 = 2.
        assert_eq!(mean_pm_std(&[1.0, 3.0], 2), "2.00 ± 1.41");
        assert_eq!(mean_pm_std(&[5.0], 1), "5.0 ± 0.0");
    }

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

    #[test]
    fn t_quantiles_match_the_printed_table() {
        // t(0.975, df), two-sided 95 %, as printed in statistics tables (e.g. NIST/SEMATECH
        // e-Handbook 1.3.6.7.2) to three decimals; df = 1 is exactly tan(0.475 π).
        for (df, printed) in [(1.0, 12.706), (2.0, 4.303), (4.0, 2.776), (10.0, 2.228), (29.0, 2.045)] {
            let t = student_t_quantile(0.975, df);
            assert!((t - printed).abs() < 5e-4, "df {df}: {t} vs {printed}");
        }
        assert!((student_t_quantile(0.975, 1.0) - (0.475 * std::f64::consts::PI).tan()).abs() < 1e-9);
        // df = 2 has a closed form: t = (2q - 1) sqrt(2 / (1 - (2q - 1)²)) at q = 0.975.
        assert!((student_t_quantile(0.975, 2.0) - 0.95 * (2.0f64 / (1.0 - 0.95 * 0.95)).sqrt()).abs() < 1e-9);
        // Large df approaches the normal quantile 1.95996.
        assert!((student_t_quantile(0.975, 1e6) - 1.959_966).abs() < 1e-4);
    }

    #[test]
    fn estimate_of_three_seeds() {
        // 79.0, 79.3, 79.6: mean 79.3, sample std 0.3, half-width 4.303 · 0.3 / √3 = 0.7453.
        let e = Estimate::of(&[79.0, 79.3, 79.6]).unwrap();
        assert_eq!(e.n, 3);
        assert!((e.mean - 79.3).abs() < 1e-12 && (e.std.unwrap() - 0.3).abs() < 1e-12);
        let h = student_t_quantile(0.975, 2.0) * 0.3 / 3f64.sqrt();
        assert!((e.half_width.unwrap() - h).abs() < 1e-12 && (h - 0.7453).abs() < 1e-4, "{h}");
        let (lo, hi) = e.interval().unwrap();
        assert!((lo - (79.3 - h)).abs() < 1e-12 && (hi - (79.3 + h)).abs() < 1e-12);
        // One seed: a mean, no spread, no interval; none: no estimate.
        let one = Estimate::of(&[71.5]).unwrap();
        assert_eq!((one.n, one.std, one.half_width, one.interval()), (1, None, None, None));
        assert_eq!(Estimate::of(&[]), None);
    }
}
