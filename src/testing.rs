//! What the unit tests share.

/// A small deterministic generator (xorshift64) for the randomised tests: the same
/// numbers at every run, so a failure repeats.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// The next number (every bit pattern).
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
