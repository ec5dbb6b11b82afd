//! Management registers (issue 6), first pieces: the pure rules that the registers will apply —
//! risk values by the seed's formula and by the IPA small-business method (`risk`), and the APPI
//! clock for incidents (`appi`). They know nothing of the store yet; each is tested against
//! worked examples.

pub mod appi;
pub mod risk;
