//! Numbers as people read them in tables and messages: one formatter for durations, one for
//! counts, used everywhere a duration or a count of images is printed.

/// `42s`, `12m`, `3.4h`, `1.5d` (seconds rounded up below a minute).
pub fn duration(seconds: f64) -> String {
    match seconds {
        s if s >= 86_400.0 => format!("{:.1}d", s / 86_400.0),
        s if s >= 3_600.0 => format!("{:.1}h", s / 3_600.0),
        s if s >= 60.0 => format!("{:.0}m", s / 60.0),
        s => format!("{:.0}s", s.ceil()),
    }
}

/// `889`, `178K`, `2.5M`, `1.2G`.
pub fn count(n: usize) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1}G", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 10_000 => format!("{:.0}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_counts() {
        assert_eq!([duration(0.2), duration(59.0), duration(150.0), duration(7_200.0), duration(129_600.0)], ["1s", "59s", "2m", "2.0h", "1.5d"]);
        assert_eq!([count(889), count(9_999), count(177_800), count(2_500_000), count(1_200_000_000)], ["889", "9999", "178K", "2.5M", "1.2G"]);
    }
}
