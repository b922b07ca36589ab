//! numpy's legacy random generator (`np.random.seed` / `np.random.shuffle`), ported bit for bit.
//!
//! The long-tailed CIFAR protocol (Cao et al. 2019) picks its images with numpy's global
//! `RandomState`. To keep *the same images* as every paper that used it, we reproduce:
//! - MT19937 seeded from an integer the way legacy numpy does it: `RandomState.seed(int)` calls
//!   `mt19937_seed(state, seed)`, i.e. Matsumoto & Nishimura's `init_genrand` (not
//!   `init_by_array`; verified against numpy output in tests/data_longtail.rs);
//! - `RandomState.shuffle` of a 1-d array: Fisher-Yates from the end, `j = random_interval(i)`
//!   for `i = n-1 .. 1`, where `random_interval` draws 32-bit words masked to the smallest
//!   covering power of two and rejects values above `i`.

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// The Mersenne Twister MT19937 with numpy's legacy integer seeding.
#[derive(Clone)]
pub struct Mt19937 {
    state: [u32; N],
    pos: usize,
}

impl Mt19937 {
    /// `np.random.seed(seed)` for an integer seed in [0, 2^32).
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; N];
        state[0] = seed;
        for i in 1..N {
            state[i] = 1_812_433_253u32.wrapping_mul(state[i - 1] ^ (state[i - 1] >> 30)).wrapping_add(i as u32);
        }
        Mt19937 { state, pos: N }
    }

    /// Regenerate the whole state block (the "twist").
    fn twist(&mut self) {
        let mt = &mut self.state;
        for i in 0..N {
            let y = (mt[i] & UPPER_MASK) | (mt[(i + 1) % N] & LOWER_MASK);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            mt[i] = mt[(i + M) % N] ^ (y >> 1) ^ mag;
        }
        self.pos = 0;
    }

    /// The next 32-bit output (`genrand_int32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= N {
            self.twist();
        }
        let mut y = self.state[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// A uniform integer in `[0, max]` by masked rejection (numpy's `random_interval` for
    /// `max <= 0xffffffff`, the only case an in-memory shuffle of CIFAR needs).
    pub fn random_interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        mask |= mask >> 1;
        mask |= mask >> 2;
        mask |= mask >> 4;
        mask |= mask >> 8;
        mask |= mask >> 16;
        loop {
            let value = self.next_u32() & mask;
            if value <= max {
                return value;
            }
        }
    }

    /// `RandomState.shuffle` of a 1-d array, in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        assert!(items.len() <= u32::MAX as usize, "legacy shuffle port covers arrays below 2^32 items");
        for i in (1..items.len()).rev() {
            let j = self.random_interval(i as u32) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_outputs_of_init_genrand_5489() {
        // The first outputs of MT19937 seeded with 5489 (the reference implementation's default).
        let mut mt = Mt19937::new(5489);
        let first: Vec<u32> = (0..3).map(|_| mt.next_u32()).collect();
        assert_eq!(first, vec![3_499_211_612, 581_869_302, 3_890_346_734]);
        // The 10000th output, a standard check value (C++ std::mt19937).
        let mut mt = Mt19937::new(5489);
        for _ in 0..9999 {
            mt.next_u32();
        }
        assert_eq!(mt.next_u32(), 4_123_659_995);
    }

    #[test]
    fn numpy_seed_0_first_words() {
        // Legacy numpy: RandomState(0).get_state()[1][:3] == [0, 1, 1812433255] (init_genrand)
        // and RandomState(0).randint(0, 2**32, size=3, dtype=np.uint64) draws one raw word each.
        let mt = Mt19937::new(0);
        assert_eq!(&mt.state[..3], &[0, 1, 1_812_433_255]);
        let mut mt = Mt19937::new(0);
        let words: Vec<u32> = (0..3).map(|_| mt.next_u32()).collect();
        assert_eq!(words, vec![2_357_136_044, 2_546_248_239, 3_071_714_933]);
    }

    #[test]
    fn interval_stays_in_range() {
        let mut mt = Mt19937::new(1);
        for max in [1u32, 2, 3, 7, 8, 1000, 4999] {
            for _ in 0..200 {
                assert!(mt.random_interval(max) <= max);
            }
        }
    }
}
