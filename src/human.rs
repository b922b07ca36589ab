//! Numbers as people read them in tables and messages: one formatter for durations, one for
//! counts, used everywhere a duration or a count of images is printed.

/// `12.3 s`, `4m 05s`, `2h 07m`, `1d 12h`.
pub fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else if seconds < 3600.0 {
        let s = seconds.round() as u64;
        format!("{}m {:02}s", s / 60, s % 60)
    } else if seconds < 86_400.0 {
        let m = (seconds / 60.0).round() as u64;
        format!("{}h {:02}m", m / 60, m % 60)
    } else {
        let h = (seconds / 3600.0).round() as u64;
        format!("{}d {:02}h", h / 24, h % 24)
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
        assert_eq!(
            [duration(12.34), duration(245.0), duration(7_620.0), duration(129_600.0)],
            ["12.3 s", "4m 05s", "2h 07m", "1d 12h"]
        );
        assert_eq!(
            [count(889), count(9_999), count(177_800), count(2_500_000), count(1_200_000_000)],
            ["889", "9999", "178K", "2.5M", "1.2G"]
        );
    }
}
