//! Hostile and malformed OSDP frames at the agent's link: wrong CRC, wrong sequence, wrong
//! address, replayed secure-channel replies, garbage — each refused with an error, never a
//! panic; and the frame parser fuzzed.

use std::io::{Read, Write};

use mamori_agent::osdp_link::{decode_event, AcuLink, LinkError};
use mamori_doorsim::SimReader;
use osdp::packet::Sqn;

const SCBK: [u8; 16] = [7; 16];

/// A fake reader: whatever bytes we queue are what the agent reads.
struct Scripted {
    replies: Vec<u8>,
}
impl Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.replies.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::WouldBlock, "nothing"));
        }
        let n = buf.len().min(self.replies.len());
        buf[..n].copy_from_slice(&self.replies[..n]);
        self.replies.drain(..n);
        Ok(n)
    }
}
impl Write for Scripted {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn ack(addr: u8, sqn: u8) -> Vec<u8> {
    use osdp::packet::{Address, ControlByte, CtrlFlags, PacketBuilder};
    PacketBuilder::plain(Address::reply(addr).unwrap(), ControlByte::new(Sqn::new(sqn).unwrap(), CtrlFlags::USE_CRC), 0x40, vec![])
        .encode()
        .unwrap()
}

#[test]
fn malformed_frames_are_refused() {
    let good = ack(1, 0);
    let mut link = AcuLink::new(Scripted { replies: vec![] }, 1, SCBK);
    assert!(link.accept(&good, Sqn::ZERO).is_ok());
    // wrong CRC
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 1] ^= 0xFF;
    assert!(matches!(link.accept(&bad, Sqn::ZERO), Err(LinkError::Frame(_))));
    // wrong sequence
    assert!(matches!(link.accept(&ack(1, 2), Sqn::new(1).unwrap()), Err(LinkError::Sequence { .. })));
    // another reader's address, or a command instead of a reply
    assert!(matches!(link.accept(&ack(2, 0), Sqn::ZERO), Err(LinkError::Address { .. })));
    // truncated
    assert!(link.accept(&good[..good.len() - 2], Sqn::ZERO).is_err());
    // RAW with a lying bit count
    assert!(decode_event(0x50, &[0, 0, 64, 0, 1, 2]).is_err());
    assert!(decode_event(0x53, &[0, 5, b'1']).is_err());
}

#[test]
fn silence_and_garbage_time_out() {
    let mut link = AcuLink::new(Scripted { replies: vec![0x00, 0x53, 0xFF, 0xFF, 0x12, 0x53] }, 1, SCBK);
    link.reply_timeout = std::time::Duration::from_millis(50);
    assert!(matches!(link.start(), Err(LinkError::Timeout(_))));
}

/// A recording man-in-the-middle replays an earlier secure reply: the MAC chain refuses it.
#[test]
fn replayed_secure_reply_is_refused() {
    let sim = SimReader::start("127.0.0.1:0", 3, SCBK).unwrap();
    let s = std::net::TcpStream::connect(sim.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_millis(2))).unwrap();
    let rec = Recorder { s, log: vec![] };
    let mut link = AcuLink::new(rec, 3, SCBK);
    link.start().expect("secure channel with LibOSDP");
    assert!(link.is_secure());
    link.poll().unwrap();
    // the reply to the last poll, as recorded on the wire
    let recorded = link_io(&mut link).log.clone();
    let (p, _) = osdp::packet::ParsedPacket::parse(&recorded).expect("a whole frame was recorded");
    let sqn = p.ctrl.sqn;
    // two more polls bring the sequence number round to the recorded one again (1, 2, 3)
    link.poll().unwrap();
    link.poll().unwrap();
    let r = link.accept(&recorded, sqn);
    assert!(matches!(r, Err(LinkError::Secure(_))), "a replayed reply must fail its MAC: {r:?}");
}

struct Recorder {
    s: std::net::TcpStream,
    log: Vec<u8>,
}
impl Read for Recorder {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.s.read(buf)?;
        self.log = buf[..n].to_vec();
        Ok(n)
    }
}
impl Write for Recorder {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.s.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.s.flush()
    }
}

fn link_io<T: Read + Write>(l: &mut AcuLink<T>) -> &mut T {
    l.io_mut()
}

#[test]
fn wrong_key_never_gets_a_channel() {
    let sim = SimReader::start("127.0.0.1:0", 4, SCBK).unwrap();
    let s = std::net::TcpStream::connect(sim.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_millis(2))).unwrap();
    let mut link = AcuLink::new(s, 4, [9; 16]);
    assert!(link.start().is_err());
    assert!(!link.is_secure());
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        /// Any bytes at all: an error or a frame, never a panic.
        #[test]
        fn frame_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut link = AcuLink::new(Scripted { replies: vec![] }, 1, SCBK);
            let _ = link.accept(&bytes, Sqn::ZERO);
            let _ = decode_event(bytes.first().copied().unwrap_or(0x50), &bytes);
        }
        /// Valid frames with one byte flipped are refused.
        #[test]
        fn any_flipped_byte_is_refused(pos in 0usize..8, bit in 0u8..8) {
            let mut f = ack(1, 0);
            prop_assume!(pos < f.len());
            f[pos] ^= 1 << bit;
            let mut link = AcuLink::new(Scripted { replies: vec![] }, 1, SCBK);
            prop_assert!(link.accept(&f, Sqn::ZERO).is_err());
        }
        /// The agent's stream reader survives any bytes on the wire.
        #[test]
        fn link_survives_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut link = AcuLink::new(Scripted { replies: bytes }, 1, SCBK);
            link.reply_timeout = std::time::Duration::from_millis(5);
            let _ = link.start();
        }
    }
}

/// The simulated reader takes the agent back after its connection drops.
#[test]
fn reader_accepts_a_new_connection_after_a_drop() {
    let sim = SimReader::start("127.0.0.1:0", 5, SCBK).unwrap();
    for _ in 0..2 {
        let s = std::net::TcpStream::connect(sim.addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_millis(2))).unwrap();
        let mut link = AcuLink::new(s, 5, SCBK);
        link.start().expect("secure channel on this connection");
        link.poll().unwrap();
    }
}
