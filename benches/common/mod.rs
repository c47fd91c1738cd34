//! What more than one bench runs.

use tcpsim::tcp::pair::Scratch;
use tcpsim::tcp::{Config, Pair, SeqNum};

/// One AUTO lifecycle in the core alone, as the table does it: open (three-way handshake),
/// simultaneous close, TIME-WAIT expiry. `i` varies the ISS.
pub fn core_lifecycle(cfg: &Config, scratch: &mut Scratch, i: u32) -> Pair {
    let mut p = Pair::new();
    p.drive()
        .open(cfg, 0, SeqNum(i), SeqNum(!i), scratch, &mut ())
        .expect("a fresh pair opens");
    p.drive()
        .close_both(cfg, 1, false, scratch, &mut ())
        .expect("an ESTABLISHED pair closes");
    p.drive()
        .on_timeout(cfg, 1 + cfg.time_wait_ms(), scratch, &mut ());
    p
}
