//! The statistics behind every number the report prints about seeds: the
//! mean of a cell with its Student-t 95% confidence interval, and the
//! verdict between two cells from Welch's unequal-variance t-test.
//!
//! For `n` finals `x_i` of one cell (one per seed):
//!
//! ```text
//! mean = sum x_i / n,   s^2 = sum (x_i - mean)^2 / (n - 1)
//! 95% interval: mean +- t_{0.975, n-1} s / sqrt(n)          (n >= 2)
//! ```
//!
//! With one seed there is no interval ("n = 1, no interval"), never "± 0".
//!
//! Welch's test of cells `a` and `b` (`n_a, n_b >= 2`):
//!
//! ```text
//! d = mean_a - mean_b,   se^2 = s_a^2 / n_a + s_b^2 / n_b
//! df = se^4 / ((s_a^2/n_a)^2 / (n_a-1) + (s_b^2/n_b)^2 / (n_b-1))   (Welch-Satterthwaite)
//! t = d / se,   p = 2 P(T_df > |t|),   95% interval of d: d +- t_{0.975, df} se
//! ```
//!
//! The verdict is "better" (`p < 0.05`, `d > 0`), "worse" (`p < 0.05`,
//! `d < 0`) or "not resolved" (also when neither cell varies over seeds:
//! there is no spread to test against). Student-t quantiles and tail probabilities
//! come from `statrs`.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// The two-sided level of every interval and test.
pub const LEVEL: f64 = 0.95;

/// The test's significance level, `1 - LEVEL`.
pub const ALPHA: f64 = 0.05;

/// `t_{p, df}`, the `p` quantile of Student's t with `df` degrees of freedom.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => t.inverse_cdf(p),
        Err(_) => f64::NAN,
    }
}

/// `P(T_df > |t|) * 2`, the two-sided p-value of `t`.
pub fn two_sided_p(t: f64, df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df) {
        Ok(dist) => (2.0 * dist.sf(t.abs())).min(1.0),
        Err(_) => f64::NAN,
    }
}

/// A cell's finals over seeds: mean, sample standard deviation and the
/// half-width of the 95% interval (`None` with one seed).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Number of seeds.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (`n - 1` in the denominator; 0 for n = 1).
    pub sd: f64,
    /// `t_{0.975, n-1} sd / sqrt(n)`, for `n >= 2`.
    pub half_width: Option<f64>,
}

impl Summary {
    /// Summarizes `values` (at least one).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        if n < 2 {
            return Self {
                n,
                mean,
                sd: 0.0,
                half_width: None,
            };
        }
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let sd = var.sqrt();
        let t = t_quantile(0.5 + LEVEL / 2.0, (n - 1) as f64);
        Self {
            n,
            mean,
            sd,
            half_width: Some(t * sd / (n as f64).sqrt()),
        }
    }

    /// `0.4123 ± 0.0120 (n = 3)`, or `0.4123 (n = 1, no interval)`.
    pub fn text(&self) -> String {
        match self.half_width {
            Some(h) => format!("{:.4} ± {h:.4} (n = {})", self.mean, self.n),
            None => format!("{:.4} (n = {}, no interval)", self.mean, self.n),
        }
    }
}

/// The outcome of comparing cell `a` with cell `b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `a` is higher, at the 95% level.
    Better,
    /// `a` is lower, at the 95% level.
    Worse,
    /// The data cannot decide (or there are fewer than two seeds a side).
    NotResolved,
}

impl Verdict {
    /// The word the report prints.
    pub fn word(self) -> &'static str {
        match self {
            Self::Better => "better",
            Self::Worse => "worse",
            Self::NotResolved => "not resolved",
        }
    }
}

/// Welch's t-test of `a` against `b` (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Welch {
    /// `mean_a - mean_b`.
    pub diff: f64,
    /// Its standard error.
    pub se: f64,
    /// Welch-Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// Half-width of the 95% interval of `diff`.
    pub half_width: f64,
}

impl Welch {
    /// The test, or `None` when a side has fewer than two values.
    pub fn test(a: &[f64], b: &[f64]) -> Option<Self> {
        if a.len() < 2 || b.len() < 2 {
            return None;
        }
        let (sa, sb) = (Summary::of(a), Summary::of(b));
        let (va, vb) = (
            sa.sd.powi(2) / a.len() as f64,
            sb.sd.powi(2) / b.len() as f64,
        );
        let diff = sa.mean - sb.mean;
        let se2 = va + vb;
        if se2 == 0.0 {
            // Both cells repeat one value (a deterministic collapse, say):
            // no spread to test against, so no verdict either way.
            return Some(Self {
                diff,
                se: 0.0,
                df: f64::NAN,
                p: 1.0,
                half_width: f64::NAN,
            });
        }
        let df =
            se2.powi(2) / (va.powi(2) / (a.len() - 1) as f64 + vb.powi(2) / (b.len() - 1) as f64);
        let se = se2.sqrt();
        Some(Self {
            diff,
            se,
            df,
            p: two_sided_p(diff / se, df),
            half_width: t_quantile(0.5 + LEVEL / 2.0, df) * se,
        })
    }

    /// The verdict at the 95% level.
    pub fn verdict(&self) -> Verdict {
        if self.p < ALPHA {
            if self.diff > 0.0 {
                Verdict::Better
            } else {
                Verdict::Worse
            }
        } else {
            Verdict::NotResolved
        }
    }

    /// `+0.0412 [+0.0101, +0.0723], Welch p = 0.021`.
    pub fn text(&self) -> String {
        format!(
            "{:+.4} [{:+.4}, {:+.4}], Welch {}",
            self.diff,
            self.diff - self.half_width,
            self.diff + self.half_width,
            p_text(self.p)
        )
    }
}

/// `p = 0.021`, or `p < 0.001` below that.
pub fn p_text(p: f64) -> String {
    if p < 1e-3 {
        "p < 0.001".into()
    } else {
        format!("p = {p:.3}")
    }
}

/// The verdict of `a` against `b`: Welch's at the 95% level, or "not
/// resolved" with fewer than two values a side.
pub fn verdict(a: &[f64], b: &[f64]) -> Verdict {
    Welch::test(a, b).map_or(Verdict::NotResolved, |w| w.verdict())
}
