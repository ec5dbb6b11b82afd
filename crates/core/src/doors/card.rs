//! Credentials as presented at a reader, parsed once into a canonical key: a FeliCa IDm
//! (8 bytes), a MIFARE UID (4, 7 or 10 bytes), a Wiegand 26-bit H10301 number (facility
//! 0–255, card 0–65535, both parity bits checked), or a palm-vein enrolment reference.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// How a card number is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardFormat {
    Felica,
    Mifare,
    H10301,
}

impl CardFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            CardFormat::Felica => "felica",
            CardFormat::Mifare => "mifare",
            CardFormat::H10301 => "h10301",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "felica" => Ok(Self::Felica),
            "mifare" => Ok(Self::Mifare),
            "h10301" | "wiegand26" => Ok(Self::H10301),
            other => Err(CoreError::invalid("format", format!("unknown card format {other:?}; expected felica, mifare or h10301"))),
        }
    }
}

/// A parsed card number. Its key (`felica:0123456789ABCDEF`, `mifare:04A1B2C3`,
/// `h10301:12:34567`) is what the store and the rules hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CardNumber {
    format: CardFormat,
    key: String,
}

fn hex_bytes(field: &str, s: &str) -> Result<Vec<u8>> {
    let s: String = s.chars().filter(|c| !matches!(c, ':' | '-' | ' ')).collect();
    hex::decode(&s).map_err(|_| CoreError::invalid(field, "must be hexadecimal"))
}

impl CardNumber {
    /// Parses a number typed by a person or sent by an agent.
    pub fn parse(format: CardFormat, s: &str) -> Result<Self> {
        let s = s.trim();
        match format {
            CardFormat::Felica => {
                let b = hex_bytes("number", s)?;
                if b.len() != 8 {
                    return Err(CoreError::invalid("number", "a FeliCa IDm is 8 bytes (16 hexadecimal digits)"));
                }
                Ok(Self { format, key: format!("felica:{}", hex::encode_upper(b)) })
            }
            CardFormat::Mifare => {
                let b = hex_bytes("number", s)?;
                if ![4, 7, 10].contains(&b.len()) {
                    return Err(CoreError::invalid("number", "a MIFARE UID is 4, 7 or 10 bytes"));
                }
                Ok(Self { format, key: format!("mifare:{}", hex::encode_upper(b)) })
            }
            CardFormat::H10301 => {
                let (f, c) = s
                    .split_once([':', '/', '-'])
                    .ok_or_else(|| CoreError::invalid("number", "an H10301 number is FACILITY:CARD, e.g. 12:34567"))?;
                let f: u8 = f.trim().parse().map_err(|_| CoreError::invalid("number", "the facility code is 0 to 255"))?;
                let c: u16 = c.trim().parse().map_err(|_| CoreError::invalid("number", "the card number is 0 to 65535"))?;
                Ok(Self::h10301(f, c))
            }
        }
    }

    pub fn h10301(facility: u8, card: u16) -> Self {
        Self { format: CardFormat::H10301, key: format!("h10301:{facility}:{card}") }
    }

    /// Parses a Wiegand 26-bit frame (bit 25 first), checking both parity bits.
    pub fn from_wiegand26(bits: u32) -> Result<Self> {
        if bits >> 26 != 0 {
            return Err(CoreError::invalid("card", "more than 26 bits"));
        }
        let data = (bits >> 1) & 0xFF_FFFF;
        let even = (bits >> 25) & 1;
        let odd = bits & 1;
        let high = (data >> 12) & 0xFFF;
        let low = data & 0xFFF;
        if !(high.count_ones() + even).is_multiple_of(2) || (low.count_ones() + odd).is_multiple_of(2) {
            return Err(CoreError::invalid("card", "Wiegand parity error"));
        }
        Ok(Self::h10301((data >> 16) as u8, (data & 0xFFFF) as u16))
    }

    /// The Wiegand 26-bit frame of an H10301 number, parity bits included.
    pub fn wiegand26(facility: u8, card: u16) -> u32 {
        let data = (u32::from(facility) << 16) | u32::from(card);
        let even = ((data >> 12) & 0xFFF).count_ones() % 2;
        let odd = 1 - (data & 0xFFF).count_ones() % 2;
        (even << 25) | (data << 1) | odd
    }

    /// Reads raw card data as an OSDP reader reports it (bit count, MSB first): 26 bits are
    /// Wiegand H10301, 64 bits a FeliCa IDm, 32, 56 or 80 bits a MIFARE UID.
    pub fn from_raw_bits(bit_count: usize, data: &[u8]) -> Result<Self> {
        match bit_count {
            26 => {
                if data.len() < 4 {
                    return Err(CoreError::invalid("card", "26-bit read shorter than 4 bytes"));
                }
                let v = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) >> 6;
                Self::from_wiegand26(v)
            }
            64 if data.len() == 8 => Self::parse(CardFormat::Felica, &hex::encode(data)),
            32 | 56 | 80 if data.len() * 8 == bit_count => Self::parse(CardFormat::Mifare, &hex::encode(data)),
            _ => Err(CoreError::invalid("card", format!("unsupported card read of {bit_count} bits"))),
        }
    }

    /// The bytes and bit count a reader sends for this card (inverse of `from_raw_bits`).
    pub fn to_raw_bits(&self) -> (usize, Vec<u8>) {
        match self.format {
            CardFormat::H10301 => {
                let mut it = self.key.split(':').skip(1);
                let f: u8 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
                let c: u16 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
                let v = Self::wiegand26(f, c) << 6;
                (26, v.to_be_bytes().to_vec())
            }
            _ => {
                let b = hex::decode(self.key.split_once(':').map_or("", |x| x.1)).unwrap_or_default();
                (b.len() * 8, b)
            }
        }
    }

    pub fn format(&self) -> CardFormat {
        self.format
    }
    pub fn key(&self) -> &str {
        &self.key
    }
    /// The number without its format prefix, as stored in `credentials.number`.
    pub fn number(&self) -> &str {
        self.key.split_once(':').map_or("", |x| x.1)
    }
}

impl TryFrom<String> for CardNumber {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self> {
        let (f, n) = s.split_once(':').ok_or_else(|| CoreError::invalid("card", "expected FORMAT:NUMBER"))?;
        Self::parse(CardFormat::parse(f)?, n)
    }
}
impl From<CardNumber> for String {
    fn from(c: CardNumber) -> String {
        c.key
    }
}
impl fmt::Display for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

/// A palm-vein enrolment reference: the template id the palm unit reports after its own match.
pub fn palm_ref(s: &str) -> Result<String> {
    let b = hex_bytes("palm", s)?;
    if b.is_empty() || b.len() > 32 {
        return Err(CoreError::invalid("palm", "an enrolment reference is 1 to 32 bytes of hexadecimal"));
    }
    Ok(hex::encode_upper(b))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_each_format() {
        assert_eq!(CardNumber::parse(CardFormat::Felica, "01 2e 4c d2 a1 b3 c4 d5").unwrap().key(), "felica:012E4CD2A1B3C4D5");
        assert!(CardNumber::parse(CardFormat::Felica, "012E").is_err());
        assert_eq!(CardNumber::parse(CardFormat::Mifare, "04:a1:b2:c3").unwrap().key(), "mifare:04A1B2C3");
        assert!(CardNumber::parse(CardFormat::Mifare, "04a1b2").is_err());
        assert_eq!(CardNumber::parse(CardFormat::H10301, "12:34567").unwrap().key(), "h10301:12:34567");
        assert!(CardNumber::parse(CardFormat::H10301, "256:1").is_err());
        assert!(CardNumber::parse(CardFormat::H10301, "1:65536").is_err());
    }

    #[test]
    fn wiegand_parity_is_checked() {
        let w = CardNumber::wiegand26(12, 34567);
        assert_eq!(CardNumber::from_wiegand26(w).unwrap(), CardNumber::h10301(12, 34567));
        assert!(CardNumber::from_wiegand26(w ^ 1).is_err());
        assert!(CardNumber::from_wiegand26(w ^ (1 << 25)).is_err());
    }

    proptest! {
        #[test]
        fn h10301_round_trips(f in any::<u8>(), c in any::<u16>()) {
            let n = CardNumber::h10301(f, c);
            let (bits, data) = n.to_raw_bits();
            prop_assert_eq!(CardNumber::from_raw_bits(bits, &data).unwrap(), n);
        }
        #[test]
        fn any_single_bit_flip_is_caught(f in any::<u8>(), c in any::<u16>(), bit in 0u32..26) {
            let w = CardNumber::wiegand26(f, c) ^ (1 << bit);
            // a flipped data bit breaks one parity; a flipped parity bit breaks itself
            prop_assert!(CardNumber::from_wiegand26(w).is_err());
        }
        #[test]
        fn hex_cards_round_trip(b in proptest::collection::vec(any::<u8>(), 8)) {
            let n = CardNumber::parse(CardFormat::Felica, &hex::encode(&b)).unwrap();
            let (bits, data) = n.to_raw_bits();
            prop_assert_eq!(CardNumber::from_raw_bits(bits, &data).unwrap(), n);
        }
        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = CardNumber::try_from(s);
        }
    }
}
