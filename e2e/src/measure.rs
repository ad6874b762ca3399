//! Figures of the lab's processes for benchmarks and measuring tests:
//! memory and CPU as Linux reports them under `/proc/PID`, and the summary
//! line printed for a series of trials.

use std::fmt;

/// A field of `/proc/PID/status` given in kB (`VmHWM:`, `VmRSS:`,
/// `RssAnon:`, ...), in KiB; `None` if the process or the field is gone.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&status, field)
}

/// The peak resident set (VmHWM) of a process, in bytes.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:").map(|kib| kib * 1024)
}

/// What the resident set of a process is made of now, in MB: (all,
/// anonymous). Heap and stacks are anonymous; the binary's pages are not.
pub fn rss_parts_mb(pid: u32) -> Option<(f64, f64)> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let mb = |field: &str| kib_field(&rollup, field).map(|kib| kib as f64 / 1000.0);
    Some((mb("Rss:")?, mb("Anonymous:")?))
}

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the parenthesised command name, utime and stime are the 12th
    // and 13th fields, in clock ticks (100 a second on Linux).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Median and spread of a series of figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The middle value (the upper one of an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// How many values.
    pub n: usize,
}

impl Summary {
    /// The summary of `values`; `None` for none.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        Some(Self {
            median: *v.get(v.len() / 2)?,
            min: *v.first()?,
            max: *v.last()?,
            n: v.len(),
        })
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "median {:.3}, min {:.3}, max {:.3} (n={})",
            self.median, self.min, self.max, self.n
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_rules() {
        // (rule, values, (median, min, max, n) wanted)
        type Case<'a> = (&'a str, Vec<f64>, Option<(f64, f64, f64, usize)>);
        let cases: [Case; 4] = [
            ("no_values_no_summary", vec![], None),
            (
                "one_value_is_all_three",
                vec![2.0],
                Some((2.0, 2.0, 2.0, 1)),
            ),
            (
                "an_odd_count_takes_the_middle",
                vec![3.0, 1.0, 2.0],
                Some((2.0, 1.0, 3.0, 3)),
            ),
            (
                "an_even_count_takes_the_upper_middle",
                vec![4.0, 1.0, 3.0, 2.0],
                Some((3.0, 1.0, 4.0, 4)),
            ),
        ];
        for (rule, values, want) in cases {
            let got = Summary::of(&values).map(|s| (s.median, s.min, s.max, s.n));
            assert_eq!(got, want, "{rule}");
        }
        let shown = Summary::of(&[1.0, 2.0]).map(|s| s.to_string());
        assert_eq!(
            shown.as_deref(),
            Some("median 2.000, min 1.000, max 2.000 (n=2)")
        );
    }

    #[test]
    fn kib_fields_are_read_by_name() {
        let status = "Name:\tbird\nVmHWM:\t  4321 kB\nVmRSS:\t  1234 kB\n";
        assert_eq!(kib_field(status, "VmHWM:"), Some(4321));
        assert_eq!(kib_field(status, "VmRSS:"), Some(1234));
        assert_eq!(kib_field(status, "RssAnon:"), None);
    }

    #[test]
    fn this_process_has_figures() {
        let pid = std::process::id();
        assert!(peak_rss_bytes(pid).is_some_and(|b| b > 0));
        assert!(cpu_seconds(pid).is_some());
        let (rss, anon) = rss_parts_mb(pid).expect("smaps_rollup of this process");
        assert!(rss >= anon && anon > 0.0, "rss {rss}, anonymous {anon}");
    }
}
