//! `mamori-doorsim`: virtual OSDP readers for demonstrations. Each `--reader ADDR@HOST:PORT`
//! listens for a door agent; lines on standard input act on a reader:
//!
//! ```text
//! card 1 felica 0102030405060708     present a card at reader 1
//! card 1 h10301 12:34567
//! palm 1 A1B2C3                      a palm-vein match (enrolment reference)
//! keys 1 1234#                       PIN keys
//! door 1 open|close                  door contact
//! count 1                            one person through (people counter)
//! ```
//! Lock commands the agent sends are printed as `unlock ADDR output=N ms=M`.

use std::io::BufRead;
use std::time::Duration;

use mamori_doorsim::{Action, SimReader};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut scbk = [0u8; 16];
    let mut readers = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--scbk" => {
                let k = hex::decode(it.next().ok_or_else(|| anyhow::anyhow!("--scbk needs 32 hex digits"))?)?;
                anyhow::ensure!(k.len() == 16, "--scbk needs 32 hex digits");
                scbk.copy_from_slice(&k);
            }
            "--reader" => {
                let spec = it.next().ok_or_else(|| anyhow::anyhow!("--reader ADDR@HOST:PORT"))?;
                let (addr, listen) = spec.split_once('@').ok_or_else(|| anyhow::anyhow!("--reader ADDR@HOST:PORT"))?;
                readers.push((addr.parse::<u8>()?, listen.to_owned()));
            }
            "-h" | "--help" => {
                println!("mamori-doorsim --scbk HEX32 --reader ADDR@HOST:PORT [...]; then commands on stdin (see the source)");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    anyhow::ensure!(!readers.is_empty(), "name at least one --reader ADDR@HOST:PORT");
    let mut sims = Vec::new();
    for (addr, listen) in &readers {
        let s = SimReader::start(listen, *addr, scbk)?;
        println!("reader {addr} listening on {}", s.addr);
        sims.push((*addr, s));
    }
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        for (addr, s) in &sims {
            while let Ok(o) = s.outputs.try_recv() {
                println!("unlock {addr} output={} ms={}", o.output_no, u32::from(o.timer_100ms) * 100);
            }
        }
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(line) => {
                if let Err(e) = act(&sims, &line) {
                    eprintln!("{e}");
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => return Ok(()),
        }
    }
}

fn act(sims: &[(u8, SimReader)], line: &str) -> anyhow::Result<()> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let Some(cmd) = w.first() else { return Ok(()) };
    let addr: u8 = w.get(1).ok_or_else(|| anyhow::anyhow!("name the reader address"))?.parse()?;
    let s = &sims.iter().find(|(a, _)| *a == addr).ok_or_else(|| anyhow::anyhow!("no reader {addr}"))?.1;
    match *cmd {
        "card" => {
            let fmt = w.get(2).ok_or_else(|| anyhow::anyhow!("card ADDR FORMAT NUMBER"))?;
            let num = w.get(3).ok_or_else(|| anyhow::anyhow!("card ADDR FORMAT NUMBER"))?;
            let (bits, data) = raw_bits(fmt, num)?;
            s.card(bits, data);
        }
        "palm" => s.act(Action::Palm(hex::decode(w.get(2).ok_or_else(|| anyhow::anyhow!("palm ADDR HEX"))?)?)),
        "keys" => s.act(Action::Keys(w.get(2).ok_or_else(|| anyhow::anyhow!("keys ADDR DIGITS"))?.as_bytes().to_vec())),
        "door" => s.act(Action::Inputs { door_open: w.get(2) == Some(&"open"), counter: false }),
        "count" => {
            s.act(Action::Inputs { door_open: true, counter: true });
            s.act(Action::Inputs { door_open: true, counter: false });
        }
        other => anyhow::bail!("unknown command {other}"),
    }
    Ok(())
}

/// The raw bits a reader sends for a card number (H10301 with Wiegand parity).
pub fn raw_bits(format: &str, number: &str) -> anyhow::Result<(usize, Vec<u8>)> {
    match format {
        "h10301" => {
            let (f, c) = number.split_once(':').ok_or_else(|| anyhow::anyhow!("FACILITY:CARD"))?;
            let data: u32 = (f.parse::<u32>()? << 16) | c.parse::<u32>()?;
            let even = ((data >> 12) & 0xFFF).count_ones() % 2;
            let odd = 1 - (data & 0xFFF).count_ones() % 2;
            let w = ((even << 25) | (data << 1) | odd) << 6;
            Ok((26, w.to_be_bytes().to_vec()))
        }
        _ => {
            let b = hex::decode(number)?;
            Ok((b.len() * 8, b))
        }
    }
}
