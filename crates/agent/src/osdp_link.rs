//! The ACU (control panel) side of one OSDP v2.2 link, with the secure channel (Annex D).
//! Framing, CRC, the secure-channel session keys, cryptograms, MAC chain and AES payload
//! encryption come from the pure-Rust `osdp` crate; this module drives the exchange.
//!
//! Every frame from the reader is checked before it is believed: CRC, address, reply flag,
//! sequence number echo, and — once the channel is secure — the MAC chain, so a replayed or
//! forged reply is refused (and the channel is re-established) rather than acted on.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use osdp::packet::{Address, ControlByte, CtrlFlags, PacketBuilder, ParsedPacket, Scb, ScsType, Sqn};
use osdp::reply::CCrypt;
use osdp::secure::{seal, unseal, Direction, Disconnected, Secure, Session};

/// Command codes (SIA OSDP v2.2, Table 5).
pub mod cmd {
    pub const POLL: u8 = 0x60;
    pub const ID: u8 = 0x61;
    pub const OUT: u8 = 0x68;
    pub const LED: u8 = 0x69;
    pub const CHLNG: u8 = 0x76;
    pub const SCRYPT: u8 = 0x77;
}
/// Reply codes (Table 6).
pub mod reply {
    pub const ACK: u8 = 0x40;
    pub const PDID: u8 = 0x45;
    pub const NAK: u8 = 0x41;
    pub const LSTATR: u8 = 0x48;
    pub const ISTATR: u8 = 0x49;
    pub const RAW: u8 = 0x50;
    pub const KEYPAD: u8 = 0x53;
    pub const CCRYPT: u8 = 0x76;
    pub const RMAC_I: u8 = 0x78;
    pub const BUSY: u8 = 0x79;
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("bad frame: {0:?}")]
    Frame(osdp::Error),
    #[error("reply from address {got}, expected {want}")]
    Address { got: u8, want: u8 },
    #[error("reply sequence {got}, expected {want}")]
    Sequence { got: u8, want: u8 },
    #[error("secure channel: {0}")]
    Secure(String),
    #[error("reader refused the command (NAK {0:#04x})")]
    Nak(u8),
    #[error("unexpected reply {0:#04x}")]
    Unexpected(u8),
}

/// What a reader reported in reply to a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderEvent {
    /// Card data: reader number (0 = the reader, 1 = the palm-vein unit), bit count, bytes.
    Card { reader_no: u8, bits: usize, data: Vec<u8> },
    /// Keys pressed (ASCII digits, `#` or 0x0D ends a PIN).
    Keys { reader_no: u8, keys: Vec<u8> },
    /// Input status (door contact on input 0, people counter on input 1).
    Inputs(Vec<u8>),
    /// Local status: the reader's tamper switch and power.
    Local { tamper: bool, power_failure: bool },
}

/// One ACU ↔ PD link over a byte stream (RS-485 serial port or TCP).
pub struct AcuLink<T: Read + Write> {
    io: T,
    addr: u8,
    scbk: [u8; 16],
    sqn: Sqn,
    session: Option<Session<Secure>>,
    rx: Vec<u8>,
    pub reply_timeout: Duration,
}

impl<T: Read + Write> AcuLink<T> {
    /// A link to the PD at `addr` whose secure-channel base key is `scbk`. `io` should have a
    /// short read timeout (a few ms), so that a silent reader does not block the bus.
    pub fn new(io: T, addr: u8, scbk: [u8; 16]) -> Self {
        Self { io, addr, scbk, sqn: Sqn::ZERO, session: None, rx: Vec::new(), reply_timeout: Duration::from_millis(200) }
    }

    /// The underlying stream (tests record the wire through it).
    pub fn io_mut(&mut self) -> &mut T {
        &mut self.io
    }

    pub fn is_secure(&self) -> bool {
        self.session.is_some()
    }

    /// Drops the secure channel; the next `start` re-establishes it from SQN 0.
    pub fn reset(&mut self) {
        self.session = None;
        self.sqn = Sqn::ZERO;
        self.rx.clear();
    }

    fn next_sqn(&mut self) -> Sqn {
        let s = self.sqn;
        self.sqn = self.sqn.next();
        s
    }

    /// Starts the link: an ID request at SQN 0 (allowed before the secure channel), then the
    /// secure-channel handshake
    /// (CHLNG → CCRYPT, SCRYPT → RMAC_I) with the reader's SCBK.
    pub fn start(&mut self) -> Result<(), LinkError> {
        self.reset();
        let (code, _) = self.plain(cmd::ID, &[0x00], None)?;
        if code != reply::PDID {
            return Err(LinkError::Unexpected(code));
        }
        let mut rnd_a = [0u8; 8];
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut rnd_a);
        let session = Session::<Disconnected>::new(self.scbk).challenge(rnd_a);
        // SCB data 0x01: use the SCBK, not the install-mode default key.
        let (code, data) = self.plain(cmd::CHLNG, &rnd_a, Some(Scb::new(ScsType::Scs11, [0x01])))?;
        if code != reply::CCRYPT {
            return Err(LinkError::Unexpected(code));
        }
        let cc = CCrypt::decode(&data).map_err(LinkError::Frame)?;
        let session = session.receive_ccrypt(&cc).map_err(|(_, e)| LinkError::Secure(format!("{e:?}")))?;
        let scrypt = session.server_cryptogram();
        let (code, data) = self.plain(cmd::SCRYPT, &scrypt, Some(Scb::new(ScsType::Scs13, [0x01])))?;
        if code != reply::RMAC_I || data.len() != 16 {
            return Err(LinkError::Unexpected(code));
        }
        let mut rmac = [0u8; 16];
        rmac.copy_from_slice(&data);
        let session = session.confirm_rmac_i(&rmac).map_err(|(_, e)| LinkError::Secure(format!("{e:?}")))?;
        self.session = Some(session);
        Ok(())
    }

    /// A plain (or handshake) command and its reply.
    fn plain(&mut self, code: u8, data: &[u8], scb: Option<Scb>) -> Result<(u8, Vec<u8>), LinkError> {
        let sqn = self.next_sqn();
        let mut flags = CtrlFlags::USE_CRC;
        if scb.is_some() {
            flags |= CtrlFlags::HAS_SCB;
        }
        let addr = Address::pd(self.addr).map_err(LinkError::Frame)?;
        let b = PacketBuilder { addr, ctrl: ControlByte::new(sqn, flags), scb, code, data: data.to_vec() };
        let bytes = b.encode().map_err(LinkError::Frame)?;
        self.io.write_all(&bytes)?;
        self.io.flush()?;
        let raw = self.read_frame()?;
        self.accept(&raw, sqn)
    }

    /// A command over the secure channel (encrypted when it carries data) and its reply.
    pub fn command(&mut self, code: u8, data: &[u8]) -> Result<(u8, Vec<u8>), LinkError> {
        let sqn = self.next_sqn();
        let addr = Address::pd(self.addr).map_err(LinkError::Frame)?;
        let session = self.session.as_mut().ok_or_else(|| LinkError::Secure("not established".into()))?;
        let bytes = seal(session, addr, sqn, Direction::AcuToPd, !data.is_empty(), code, data).map_err(LinkError::Frame)?;
        self.io.write_all(&bytes)?;
        self.io.flush()?;
        let raw = self.read_frame()?;
        let r = self.accept(&raw, sqn);
        if r.is_err() {
            // A bad reply breaks the MAC chain: start again rather than trust anything more.
            self.session = None;
        }
        r
    }

    /// Checks a reply frame: parse (CRC), address, SQN echo, and the MAC once secure.
    pub fn accept(&mut self, raw: &[u8], sqn: Sqn) -> Result<(u8, Vec<u8>), LinkError> {
        let (p, used) = ParsedPacket::parse(raw).map_err(LinkError::Frame)?;
        if used != raw.len() {
            return Err(LinkError::Frame(osdp::Error::BadLength { declared: used, actual: raw.len() }));
        }
        if !p.addr.is_reply() || p.addr.pd_addr() != self.addr {
            return Err(LinkError::Address { got: p.addr.as_byte(), want: self.addr | 0x80 });
        }
        if p.code != reply::BUSY && p.ctrl.sqn.value() != sqn.value() {
            return Err(LinkError::Sequence { got: p.ctrl.sqn.value(), want: sqn.value() });
        }
        let data = match (&mut self.session, p.scb) {
            (Some(s), Some(scb)) if scb.ty.has_mac() => unseal(s, &p, raw).map_err(|e| LinkError::Secure(format!("{e:?}")))?,
            (Some(_), _) => return Err(LinkError::Secure("plain reply on a secure channel".into())),
            (None, _) => p.data.to_vec(),
        };
        if p.code == reply::NAK {
            return Err(LinkError::Nak(data.first().copied().unwrap_or(0)));
        }
        Ok((p.code, data))
    }

    /// Reads one complete frame (up to the reply timeout).
    fn read_frame(&mut self) -> Result<Vec<u8>, LinkError> {
        let deadline = Instant::now() + self.reply_timeout;
        loop {
            // Resynchronise on SOM, then wait for the whole length.
            if let Some(pos) = self.rx.iter().position(|b| *b == osdp::SOM) {
                self.rx.drain(..pos);
            } else {
                self.rx.clear();
            }
            if self.rx.len() >= 4 {
                let len = usize::from(u16::from_le_bytes([self.rx[2], self.rx[3]]));
                if !(8..=1440).contains(&len) {
                    // Not a frame start: skip this SOM byte.
                    self.rx.drain(..1);
                    continue;
                }
                if self.rx.len() >= len {
                    return Ok(self.rx.drain(..len).collect());
                }
            }
            if Instant::now() >= deadline {
                self.rx.clear();
                return Err(LinkError::Timeout(self.reply_timeout));
            }
            let mut buf = [0u8; 256];
            match self.io.read(&mut buf) {
                Ok(0) => return Err(LinkError::Io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "link closed"))),
                Ok(n) => self.rx.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Polls the reader once; returns what it reported, if anything.
    pub fn poll(&mut self) -> Result<Option<ReaderEvent>, LinkError> {
        let (code, data) = self.command(cmd::POLL, &[])?;
        decode_event(code, &data)
    }

    /// Pulses output `output` on for `ms` milliseconds (the lock relay), OSDP control code 5.
    pub fn pulse_output(&mut self, output: u8, ms: u32) -> Result<(), LinkError> {
        let t = u16::try_from(ms.div_ceil(100)).unwrap_or(u16::MAX);
        let [lo, hi] = t.to_le_bytes();
        let (code, _) = self.command(cmd::OUT, &[output, 0x05, lo, hi])?;
        if code != reply::ACK {
            return Err(LinkError::Unexpected(code));
        }
        Ok(())
    }
}

/// Decodes a poll reply into an event (ACK: nothing to report).
pub fn decode_event(code: u8, data: &[u8]) -> Result<Option<ReaderEvent>, LinkError> {
    match code {
        reply::ACK | reply::BUSY => Ok(None),
        reply::RAW => {
            if data.len() < 4 {
                return Err(LinkError::Frame(osdp::Error::Truncated { need: 4, have: data.len() }));
            }
            let bits = usize::from(u16::from_le_bytes([data[2], data[3]]));
            let bytes = data[4..].to_vec();
            if bits == 0 || bits.div_ceil(8) != bytes.len() {
                return Err(LinkError::Frame(osdp::Error::BadLength { declared: bits, actual: bytes.len() }));
            }
            Ok(Some(ReaderEvent::Card { reader_no: data[0], bits, data: bytes }))
        }
        reply::KEYPAD => {
            if data.len() < 2 || data.len() != 2 + usize::from(data[1]) {
                return Err(LinkError::Frame(osdp::Error::Truncated { need: 2, have: data.len() }));
            }
            Ok(Some(ReaderEvent::Keys { reader_no: data[0], keys: data[2..].to_vec() }))
        }
        reply::ISTATR => Ok(Some(ReaderEvent::Inputs(data.to_vec()))),
        reply::LSTATR => {
            if data.len() < 2 {
                return Err(LinkError::Frame(osdp::Error::Truncated { need: 2, have: data.len() }));
            }
            Ok(Some(ReaderEvent::Local { tamper: data[0] != 0, power_failure: data[1] != 0 }))
        }
        other => Err(LinkError::Unexpected(other)),
    }
}
