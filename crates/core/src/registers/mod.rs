//! Management registers (issue 6), first pieces: the asset register (`assets`, in the store,
//! the API and the console), and pure rules the registers will apply — risk values by the seed's
//! formula and by the IPA small-business method (`risk`), and the APPI clock for incidents
//! (`appi`), each tested against worked examples.

pub mod appi;
pub mod assets;
pub mod documents;
pub mod incidents;
pub mod risk;
pub mod risks;
