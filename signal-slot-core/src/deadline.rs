//! Deadlines from durations a user gives (timeouts, intervals, overflow
//! waits): `Instant + Duration` panics when the sum does not fit, so
//! `Duration::MAX` ("wait for ever") would panic where it is used.

use std::time::{Duration, Instant};

/// About a century: a deadline this far off is never reached.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `from + d`, or a deadline about a century away when that does not fit.
#[inline]
pub(crate) fn after(from: Instant, d: Duration) -> Instant {
    from.checked_add(d)
        .or_else(|| from.checked_add(FOREVER))
        .unwrap_or(from)
}

/// [`after`] from now.
#[inline]
pub(crate) fn in_(d: Duration) -> Instant {
    after(Instant::now(), d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_duration_is_a_far_deadline_not_a_panic() {
        let now = Instant::now();
        assert!(after(now, Duration::MAX) >= now + Duration::from_secs(365 * 24 * 3600));
        assert_eq!(
            after(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        assert!(in_(Duration::MAX) > now);
    }
}
