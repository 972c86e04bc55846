//! NumPy's default random generator, bit for bit, so that `reset(seed)` gives the same start
//! state as Gymnasium's `env.reset(seed=...)`.
//!
//! Gymnasium seeds `np.random.Generator(PCG64(SeedSequence(seed)))`. This module implements
//! NumPy's `SeedSequence` entropy mixing (from its `bit_generator.pyx`) and PCG64 (the
//! XSL-RR 128/64 LCG, seeded as NumPy's `pcg64_set_seed` does). Doubles are NumPy's
//! `next_double`: the top 53 bits of a 64-bit draw. PCG64 is written out here rather than
//! taken from `rand_pcg` because checkpoints need its state, which that crate keeps private.

/// PCG's 128-bit LCG multiplier.
const PCG_MULT: u128 = 0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645;

const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const XSHIFT: u32 = 16;
const POOL_SIZE: usize = 4;

fn hashmix(value: u32, hash_const: &mut u32) -> u32 {
    let mut v = value ^ *hash_const;
    *hash_const = hash_const.wrapping_mul(MULT_A);
    v = v.wrapping_mul(*hash_const);
    v ^ (v >> XSHIFT)
}

fn mix(x: u32, y: u32) -> u32 {
    let r = MIX_MULT_L
        .wrapping_mul(x)
        .wrapping_sub(MIX_MULT_R.wrapping_mul(y));
    r ^ (r >> XSHIFT)
}

/// NumPy's `SeedSequence(entropy).generate_state(n_words, np.uint64)` for an integer entropy.
fn seed_sequence_state(entropy: u128, n_words: usize) -> Vec<u64> {
    // The integer as little-endian 32-bit words; 0 is one zero word.
    let mut words = Vec::new();
    let mut e = entropy;
    loop {
        words.push(e as u32);
        e >>= 32;
        if e == 0 {
            break;
        }
    }
    let mut pool = [0u32; POOL_SIZE];
    let mut hash_const = INIT_A;
    for (i, p) in pool.iter_mut().enumerate() {
        *p = hashmix(words.get(i).copied().unwrap_or(0), &mut hash_const);
    }
    for i_src in 0..POOL_SIZE {
        for i_dst in 0..POOL_SIZE {
            if i_src != i_dst {
                let h = hashmix(pool[i_src], &mut hash_const);
                pool[i_dst] = mix(pool[i_dst], h);
            }
        }
    }
    for &w in words.iter().skip(POOL_SIZE) {
        for p in pool.iter_mut() {
            let h = hashmix(w, &mut hash_const);
            *p = mix(*p, h);
        }
    }
    let mut hash_const = INIT_B;
    let state32: Vec<u32> = (0..n_words * 2)
        .map(|i| {
            let mut v = pool[i % POOL_SIZE] ^ hash_const;
            hash_const = hash_const.wrapping_mul(MULT_B);
            v = v.wrapping_mul(hash_const);
            v ^ (v >> XSHIFT)
        })
        .collect();
    state32
        .chunks_exact(2)
        .map(|c| u64::from(c[0]) | (u64::from(c[1]) << 32))
        .collect()
}

/// A random generator that draws exactly what `gymnasium.utils.seeding.np_random(seed)` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpRandom {
    state: u128,
    inc: u128,
}

impl NpRandom {
    /// The generator Gymnasium builds for `seed`.
    pub fn from_seed(seed: u64) -> Self {
        let s = seed_sequence_state(u128::from(seed), 4);
        let init_state = (u128::from(s[0]) << 64) | u128::from(s[1]);
        let init_seq = (u128::from(s[2]) << 64) | u128::from(s[3]);
        // NumPy's pcg_setseq_128_srandom_r.
        let mut r = NpRandom {
            state: 0,
            inc: (init_seq << 1) | 1,
        };
        r.step();
        r.state = r.state.wrapping_add(init_state);
        r.step();
        r
    }

    /// The generator's full state `(state, increment)`, for checkpoints.
    pub fn to_state(&self) -> (u128, u128) {
        (self.state, self.inc)
    }

    /// A generator resumed from [`to_state`](Self::to_state). The increment must be odd (it
    /// is forced to be).
    pub fn from_state(state: u128, inc: u128) -> Self {
        NpRandom {
            state,
            inc: inc | 1,
        }
    }

    #[inline]
    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }

    /// A generator seeded from the operating system's hash-key entropy (no seed given).
    pub fn from_entropy() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        Self::from_seed(h.finish())
    }

    /// A raw 64-bit draw (step, then the XSL-RR output of the new state).
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let rot = (self.state >> 122) as u32;
        let xsl = ((self.state >> 64) as u64) ^ (self.state as u64);
        xsl.rotate_right(rot)
    }

    /// A double in [0, 1), NumPy's `Generator.random()`.
    pub fn random(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// A double in [low, high), NumPy's `Generator.uniform(low, high)`.
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.random()
    }

    /// An integer in [0, n) for small `n` (not NumPy's `integers` stream; used for sampling).
    pub fn below(&mut self, n: u64) -> u64 {
        // Lemire's multiply-shift: unbiased enough for n far below 2^64 and branch-free.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_sequence_matches_numpy() {
        // np.random.SeedSequence(0).generate_state(4, np.uint64), NumPy 2.4
        assert_eq!(
            seed_sequence_state(0, 4),
            vec![
                0xdb2c_d7e7_b0f4_78be,
                0xabf4_641a_2c71_ba49,
                0x20c6_ed6d_9d7b_8d41,
                0x2c40_99de_223c_39d4,
            ]
        );
    }

    #[test]
    fn uniform_matches_gymnasium_np_random() {
        // gymnasium.utils.seeding.np_random(42)[0].uniform(-0.05, 0.05, size=(4,))
        let mut r = NpRandom::from_seed(42);
        let got: Vec<f64> = (0..4).map(|_| r.uniform(-0.05, 0.05)).collect();
        assert_eq!(
            got,
            vec![
                0.027395604855596334,
                -0.006112156024794771,
                0.03585979199113824,
                0.019736802905936393
            ]
        );
    }

    #[test]
    fn state_round_trips() {
        let mut a = NpRandom::from_seed(3);
        a.next_u64();
        let (s, i) = a.to_state();
        let mut b = NpRandom::from_state(s, i);
        assert_eq!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn large_seeds_use_every_word() {
        let a = NpRandom::from_seed(1 << 40).next_u64();
        let b = NpRandom::from_seed(1 << 41).next_u64();
        assert_ne!(a, b);
    }
}
