//! Usage figures: counts per answer, and series with every bucket present over a window.

use time::OffsetDateTime;

use crate::vocabulary::Code;
/// The windows are the shared vocabulary's (the counters keep them too); named here as well until
/// the last `domain::usage::Window` path is switched.
pub use crate::vocabulary::Window;

/// One bucket's counts, one per answer of the key API, so every refusal keeps its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts([i64; Code::ALL.len()]);

impl Counts {
    fn index(code: Code) -> usize {
        Code::ALL
            .iter()
            .position(|candidate| *candidate == code)
            .unwrap_or_default()
    }

    pub fn get(&self, code: Code) -> i64 {
        self.0[Self::index(code)]
    }

    pub fn add(&mut self, code: Code, count: i64) {
        self.0[Self::index(code)] += count;
    }

    pub fn total(&self) -> i64 {
        self.0.iter().sum()
    }

    /// Every answer but `VALID`.
    pub fn refused(&self) -> i64 {
        self.total() - self.get(Code::Valid)
    }

    /// Calls made with a key that no longer works: the strongest sign a secret is still in use
    /// somewhere it should not be.
    pub fn dead_key_calls(&self) -> i64 {
        self.get(Code::Revoked) + self.get(Code::Expired)
    }

    /// The sum of many buckets.
    pub fn sum<'a>(buckets: impl IntoIterator<Item = &'a Counts>) -> Self {
        buckets
            .into_iter()
            .fold(Self::default(), |mut total, counts| {
                for (sum, count) in total.0.iter_mut().zip(counts.0) {
                    *sum += count;
                }
                total
            })
    }
}

/// Every bucket of the window, oldest first, zero where nothing was counted.
pub fn series(
    window: Window,
    now: OffsetDateTime,
    rows: impl IntoIterator<Item = (OffsetDateTime, Code, i64)>,
) -> Vec<(OffsetDateTime, Counts)> {
    let start = window.start(now);
    let mut buckets: Vec<(OffsetDateTime, Counts)> = (0..window.buckets())
        .map(|i| (start + window.step() * i, Counts::default()))
        .collect();
    for (at, outcome, count) in rows {
        let at = window.floor(at);
        if at < start {
            continue;
        }
        let index = (at - start).whole_seconds() / window.step().whole_seconds();
        if let Some((_, counts)) = usize::try_from(index).ok().and_then(|i| buckets.get_mut(i)) {
            counts.add(outcome, count);
        }
    }
    buckets
}

/// A round number at or above `max` for the top of a chart's scale (1, 2, 5 × 10^n).
pub fn nice_ceiling(max: i64) -> i64 {
    if max <= 0 {
        return 1;
    }
    let mut magnitude = 1_i64;
    while magnitude.saturating_mul(10) <= max {
        magnitude = magnitude.saturating_mul(10);
    }
    [1, 2, 5, 10]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|candidate| *candidate >= max)
        .unwrap_or(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn series_have_every_bucket_and_keep_each_answer_apart() {
        let now = datetime!(2026-11-22 12:34:56 UTC);
        let rows = vec![
            (datetime!(2026-11-22 12:34:00 UTC), Code::Valid, 5),
            (datetime!(2026-11-22 12:34:00 UTC), Code::RateLimited, 2),
            (datetime!(2026-11-22 12:00:00 UTC), Code::Revoked, 1),
            (datetime!(2026-11-22 12:00:00 UTC), Code::NotFound, 1),
            (datetime!(2026-11-22 10:00:00 UTC), Code::Valid, 99),
        ];
        let hour = series(Window::Hour, now, rows.clone());
        assert_eq!(hour.len(), 60);
        assert_eq!(hour[0].0, datetime!(2026-11-22 11:35:00 UTC));
        assert_eq!(hour[59].1.get(Code::Valid), 5);
        assert_eq!(hour[59].1.get(Code::RateLimited), 2);
        assert_eq!(hour[59].1.refused(), 2);
        assert_eq!(hour[25].1.get(Code::Revoked), 1);
        assert_eq!(hour[25].1.get(Code::NotFound), 1);
        assert_eq!(hour[25].1.dead_key_calls(), 1);
        assert_eq!(
            hour.iter().map(|(_, c)| c.total()).sum::<i64>(),
            9,
            "10:00 is outside the hour"
        );

        let day = series(Window::Day, now, rows.clone());
        assert_eq!(day.len(), 24);
        assert_eq!(day[23].1.total(), 9);
        assert_eq!(day[21].1.get(Code::Valid), 99);

        let month = series(Window::Month, now, rows);
        assert_eq!(month.len(), 30);
        assert_eq!(month[29].0, datetime!(2026-11-22 00:00:00 UTC));
        assert_eq!(month[29].1.total(), 108);
        let all = Counts::sum(month.iter().map(|(_, c)| c));
        assert_eq!((all.get(Code::Valid), all.refused()), (104, 4));
    }

    #[test]
    fn chart_scales_end_on_round_numbers() {
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(12), 20);
        assert_eq!(nice_ceiling(45), 50);
        assert_eq!(nice_ceiling(100), 100);
        assert_eq!(nice_ceiling(101), 200);
    }
}
