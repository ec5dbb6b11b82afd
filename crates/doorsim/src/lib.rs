//! Virtual OSDP readers on LibOSDP's peripheral-device (PD) side, with the secure channel
//! enforced. A [`SimReader`] listens on TCP for the agent, and lets a test or a demonstration
//! present cards, palm-vein matches and PIN keys, open and close the door contact, pulse the
//! people counter, and see the lock commands the agent sends.
//!
//! The agent speaks OSDP through the pure-Rust `osdp` crate; the readers here speak it through
//! LibOSDP (C). Tests that pass between the two prove interoperability, not self-consistency.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use libosdp::{
    Channel, ChannelError, OsdpCommand, OsdpEvent, OsdpEventCardRead, OsdpEventKeyPress, OsdpFlag, OsdpStatusReport,
    OsdpStatusReportType, PdCapEntity, PdCapability, PdInfoBuilder, PeripheralDevice,
};

struct TcpChannel {
    s: TcpStream,
    id: i32,
    /// Set when the agent's connection is gone, so the reader waits for the next one.
    closed: Arc<AtomicBool>,
}

impl Channel for TcpChannel {
    fn get_id(&self) -> i32 {
        self.id
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ChannelError> {
        match self.s.read(buf) {
            Ok(n) if n > 0 => Ok(n),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Err(ChannelError::WouldBlock),
            _ => {
                self.closed.store(true, Ordering::SeqCst);
                Err(ChannelError::TransportError)
            }
        }
    }
    fn write(&mut self, buf: &[u8]) -> Result<usize, ChannelError> {
        self.s.write(buf).map_err(ChannelError::from)
    }
    fn flush(&mut self) -> Result<(), ChannelError> {
        self.s.flush().map_err(ChannelError::from)
    }
    fn close(&mut self) -> Result<(), ChannelError> {
        let _ = self.s.shutdown(std::net::Shutdown::Both);
        Ok(())
    }
}

/// Something done at the virtual reader.
#[derive(Debug, Clone)]
pub enum Action {
    /// Card data as the reader reads it: bit count and bytes (MSB first).
    Card { bits: usize, data: Vec<u8> },
    /// A palm-vein match by the unit attached as reader 1: the enrolment reference.
    Palm(Vec<u8>),
    /// Keys pressed.
    Keys(Vec<u8>),
    /// Door contact (input 0) and people counter (input 1).
    Inputs { door_open: bool, counter: bool },
    /// The reader's tamper switch.
    Tamper(bool),
    /// Stop the reader.
    Stop,
}

/// A command the reader received.
#[derive(Debug, Clone)]
pub struct Output {
    pub at: Instant,
    pub output_no: u8,
    pub control_code: u8,
    pub timer_100ms: u16,
}

pub struct SimReader {
    pub addr: std::net::SocketAddr,
    tx: mpsc::Sender<Action>,
    pub outputs: mpsc::Receiver<Output>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SimReader {
    /// Starts a reader at OSDP `address` with secure-channel key `scbk`, listening on `listen`.
    pub fn start(listen: &str, address: u8, scbk: [u8; 16]) -> anyhow::Result<Self> {
        let l = TcpListener::bind(listen)?;
        let addr = l.local_addr()?;
        let (tx, rx) = mpsc::channel::<Action>();
        let (otx, orx) = mpsc::channel::<Output>();
        let thread = std::thread::Builder::new().name(format!("sim-pd-{address}")).spawn(move || {
            if let Err(e) = run(l, address, scbk, rx, otx) {
                eprintln!("simulated reader {address}: {e}");
            }
        })?;
        Ok(Self { addr, tx, outputs: orx, thread: Some(thread) })
    }

    pub fn act(&self, a: Action) {
        let _ = self.tx.send(a);
    }

    /// Presents a card given as its raw bits.
    pub fn card(&self, bits: usize, data: Vec<u8>) {
        self.act(Action::Card { bits, data });
    }

    /// Waits for the next output command.
    pub fn next_output(&self, within: Duration) -> Option<Output> {
        self.outputs.recv_timeout(within).ok()
    }
}

impl Drop for SimReader {
    fn drop(&mut self) {
        let _ = self.tx.send(Action::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Takes the test's next action, if any, into `held`; false once the reader is to stop
/// (`Stop`, or the [`SimReader`] gone). `Stop` is never held.
fn hold(rx: &mpsc::Receiver<Action>, held: &mut VecDeque<Action>) -> bool {
    match rx.try_recv() {
        Ok(Action::Stop) | Err(mpsc::TryRecvError::Disconnected) => false,
        Ok(a) => {
            held.push_back(a);
            true
        }
        Err(mpsc::TryRecvError::Empty) => true,
    }
}

fn run(l: TcpListener, address: u8, scbk: [u8; 16], rx: mpsc::Receiver<Action>, otx: mpsc::Sender<Output>) -> anyhow::Result<()> {
    l.set_nonblocking(true)?;
    let mut id = 0;
    // What the test made happen at the reader, held until the agent has a secure channel to it:
    // an event notified before (or on a connection that then drops during the handshake, as
    // under load) would be lost, and a test would wait for a decision that never comes.
    let mut held: VecDeque<Action> = VecDeque::new();
    // Serve one agent connection at a time; accept a new one when it drops.
    loop {
        let s = loop {
            match l.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if !hold(&rx, &mut held) {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(e.into()),
            }
        };
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        id += 1;
        let info = PdInfoBuilder::new()
            .name(&format!("sim-{address}"))?
            .address(i32::from(address))?
            .baud_rate(115_200)?
            .flag(OsdpFlag::EnforceSecure)
            .capabilities(&[
                PdCapability::CommunicationSecurity(PdCapEntity::new(1, 1)),
                PdCapability::OutputControl(PdCapEntity::new(1, 2)),
                PdCapability::ContactStatusMonitoring(PdCapEntity::new(1, 2)),
                PdCapability::CardDataFormat(PdCapEntity::new(1, 0)),
                PdCapability::CheckCharacterSupport(PdCapEntity::new(1, 0)),
            ])
            .secure_channel_key(scbk);
        let closed = Arc::new(AtomicBool::new(false));
        let mut pd = PeripheralDevice::new(info, Box::new(TcpChannel { s, id, closed: closed.clone() }))?;
        let o = otx.clone();
        pd.set_command_callback(move |cmd| {
            if let OsdpCommand::Output(c) = cmd {
                let _ = o.send(Output { at: Instant::now(), output_no: c.output_no, control_code: c.control_code, timer_100ms: c.timer_count });
            }
            0
        });
        while !closed.load(Ordering::SeqCst) {
            pd.refresh();
            if !hold(&rx, &mut held) {
                return Ok(());
            }
            let next = if pd.is_sc_active() { held.pop_front() } else { None };
            match next {
                None | Some(Action::Stop) => {}
                Some(Action::Card { bits, data }) => {
                    let mut e = OsdpEventCardRead::new_raw(data);
                    e.nr_bits = bits;
                    let _ = pd.notify_event(OsdpEvent::CardRead(e));
                }
                Some(Action::Palm(data)) => {
                    let mut e = OsdpEventCardRead::new_raw(data);
                    e.reader_no = 1;
                    let _ = pd.notify_event(OsdpEvent::CardRead(e));
                }
                Some(Action::Keys(k)) => {
                    let _ = pd.notify_event(OsdpEvent::KeyPress(OsdpEventKeyPress::new(k)));
                }
                Some(Action::Inputs { door_open, counter }) => {
                    let mut report = [0u8; 64];
                    report[0] = u8::from(door_open);
                    report[1] = u8::from(counter);
                    let _ = pd.notify_event(OsdpEvent::Status(OsdpStatusReport { type_: OsdpStatusReportType::Input, nr_entries: 2, report }));
                }
                Some(Action::Tamper(on)) => {
                    let mut report = [0u8; 64];
                    report[0] = u8::from(on);
                    let _ = pd.notify_event(OsdpEvent::Status(OsdpStatusReport { type_: OsdpStatusReportType::Local, nr_entries: 2, report }));
                }
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}
