//! Every random byte comes from here, and here from the operating system's CSPRNG.
//!
//! Invariant: no userspace PRNG, no seeding, no fallback. If the OS cannot give random
//! bytes nothing secure can be done, so that is treated as a fatal environment fault.

use getrandom::SysRng;
use getrandom::rand_core::UnwrapErr;

/// Fills `out` with random bytes from the OS.
pub fn fill(out: &mut [u8]) {
    getrandom::fill(out).expect("the operating system's random number generator failed");
}

/// Returns `N` random bytes from the OS.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill(&mut out);
    out
}

/// A uniformly random `u32` from the OS.
pub fn u32() -> u32 {
    u32::from_be_bytes(bytes())
}

/// The OS generator as a `rand_core` RNG, for crates that take one (RSA key generation and
/// signing). It panics, like [`fill`], if the OS fails.
pub fn os_rng() -> UnwrapErr<SysRng> {
    UnwrapErr(SysRng)
}
