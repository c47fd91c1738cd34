//! The state file: a whole simulation — its connections (and through their 4-tuples, the ports
//! they hold), their timers, the counters, the clock and the run's epoch — written atomically
//! and read back all or nothing.
//!
//! Writing: a temporary file beside the state file, fsync, rename over it, fsync of the
//! directory; a crash at any point leaves the previous state file whole. Reading: into a fresh
//! table, which is used only if every byte checks out; a file that is not one, of another
//! format version, damaged, or written by a server with other addresses, settings or clock, is
//! refused, saying which.
//!
//! Format version 4 (3 had no link counters, 2 no listen or TIME-WAIT reuse counters; 1 numbered
//! client addresses from a pool's network address): `TCPSIMST`, the version (u32,
//! little-endian), then records, each a length (u32) and a postcard encoding: the header, the
//! connections one by one, a length of 0, the number of connections (u64) and a CRC-32 (u32) of
//! every byte before it. The connections are
//! the core's own types as serde encodes them; `tests` pins their encoding, so that a change to
//! them fails until the version is raised.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::table::counters::CounterSnapshot;
use crate::table::{
    Clock, Conn, ConnId, PortsPosition, RestoreError, SetupError, Table, TableConfig,
};
use crate::tcp;

const MAGIC: &[u8; 8] = b"TCPSIMST";
/// 2: a client address's index counts a pool's hosts (its network address is not one).
pub const VERSION: u32 = 4;

/// What a state file says about the run it holds, before its connections.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    written_by: String,
    virtual_clock: bool,
    now_ms: u64,
    epoch: u32,
    client_pools: Vec<String>,
    servers: Vec<SocketAddrV4>,
    ports: (u16, u16),
    tcp: tcp::Config,
    totals: CounterSnapshot,
    /// Where the port allocator stood, so that new connections take the ports they would have.
    ports_position: PortsPosition,
}

#[derive(Serialize)]
struct RecordRef<'a> {
    id: u64,
    conn: &'a Conn,
}

#[derive(Deserialize)]
struct Record {
    id: u64,
    conn: Conn,
}

/// Why a state file could not be written or read. Nothing was changed: a file that cannot be
/// written leaves the previous one; one that cannot be read starts nothing.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a tcpsim state file", path.display())]
    NotOurs { path: PathBuf },
    #[error("{}: format version {found}; this tcpsim reads version {VERSION}", path.display())]
    Version { path: PathBuf, found: u32 },
    #[error("{}: damaged ({why}); the file was cut short or changed after it was written", path.display())]
    Damaged { path: PathBuf, why: String },
    #[error("{}: written by a server with {what} {theirs}; this one has {ours} (start it with the same settings, or without --state-file)", path.display())]
    Mismatch {
        path: PathBuf,
        what: &'static str,
        theirs: String,
        ours: String,
    },
    #[error("{}: {source}", path.display())]
    Restore { path: PathBuf, source: RestoreError },
    #[error(transparent)]
    Setup(#[from] SetupError),
}

/// What a write or a read did.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub connections: u64,
    pub bytes: u64,
    pub took: Duration,
}

/// A writer that counts and checksums what goes through it.
struct Summed<W> {
    inner: W,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl<W: Write> Write for Summed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that checksums what comes through it.
struct Checked<R> {
    inner: R,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

fn record(w: &mut impl Write, value: &impl Serialize, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    let bytes = postcard::to_extend(value, std::mem::take(buf))
        .map_err(|e| std::io::Error::other(format!("encoding: {e}")))?;
    w.write_all(&(bytes.len() as u32).to_le_bytes())?;
    w.write_all(&bytes)?;
    *buf = bytes;
    Ok(())
}

/// Writes the table to `path`, atomically: the previous file stays whole until the new one is.
pub fn save(table: &Table, path: &Path) -> Result<Summary, StateError> {
    let started = Instant::now();
    let io = |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = (|| {
        let file = File::create(&tmp)?;
        let mut w = Summed {
            inner: BufWriter::with_capacity(1 << 20, file),
            crc: crc32fast::Hasher::new(),
            bytes: 0,
        };
        w.write_all(MAGIC)?;
        w.write_all(&VERSION.to_le_bytes())?;
        let addrs = table.addresses();
        let header = Header {
            written_by: format!("tcpsim {}", env!("CARGO_PKG_VERSION")),
            virtual_clock: table.clock().is_virtual(),
            now_ms: table.now(),
            epoch: table.epoch(),
            client_pools: addrs.pools().map(|c| c.to_string()).collect(),
            servers: addrs.servers().to_vec(),
            ports: (addrs.port_lo, addrs.port_hi),
            tcp: table.tcp_config().clone(),
            totals: table.stats().counters,
            ports_position: table.ports_position(),
        };
        let mut buf = Vec::new();
        record(&mut w, &header, &mut buf)?;
        let mut count = 0u64;
        let mut failed = None;
        table.for_each(|id, conn| {
            if failed.is_none() {
                let r = record(&mut w, &RecordRef { id: id.0, conn }, &mut buf);
                failed = r.err();
                count += 1;
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        w.write_all(&0u32.to_le_bytes())?;
        w.write_all(&count.to_le_bytes())?;
        let crc = w.crc.clone().finalize();
        w.write_all(&crc.to_le_bytes())?;
        let bytes = w.bytes;
        let file = w
            .inner
            .into_inner()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(path)?;
        Ok(Summary {
            connections: count,
            bytes,
            took: started.elapsed(),
        })
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}

/// Makes the rename durable: the directory entry is on disk too.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    let _ = dir;
    Ok(())
}

/// Reads `path` into a new table with `cfg` and `tcp` (a virtual clock if `virtual_clock`);
/// `None` if there is no such file. All or nothing: any fault refuses the whole file.
pub fn load(
    path: &Path,
    cfg: &TableConfig,
    tcp: &tcp::Config,
    virtual_clock: bool,
) -> Result<Option<(Table, Summary)>, StateError> {
    let started = Instant::now();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let p = || path.to_path_buf();
    let damaged = |why: String| StateError::Damaged { path: p(), why };
    let mut r = Checked {
        inner: BufReader::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
        bytes: 0,
    };
    let mut magic = [0u8; 8];
    if r.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Err(StateError::NotOurs { path: p() });
    }
    let mut v = [0u8; 4];
    r.read_exact(&mut v)
        .map_err(|_| damaged("it ends after its first bytes".into()))?;
    let found = u32::from_le_bytes(v);
    if found != VERSION {
        return Err(StateError::Version { path: p(), found });
    }
    let mut buf = Vec::new();
    let header: Header = next(&mut r, &mut buf)
        .map_err(damaged)?
        .ok_or_else(|| damaged("it has no header".into()))?;
    let mismatch = |what, theirs: String, ours: String| StateError::Mismatch {
        path: p(),
        what,
        theirs,
        ours,
    };
    let ours_pools: Vec<String> = cfg.client_pools.iter().map(|c| c.to_string()).collect();
    if header.client_pools != ours_pools {
        return Err(mismatch(
            "client pools",
            header.client_pools.join(","),
            ours_pools.join(","),
        ));
    }
    if header.servers != cfg.servers {
        let list = |s: &[SocketAddrV4]| {
            s.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        return Err(mismatch(
            "servers",
            list(&header.servers),
            list(&cfg.servers),
        ));
    }
    if header.ports != cfg.ports {
        let show = |(a, b): (u16, u16)| format!("{a}-{b}");
        return Err(mismatch("ports", show(header.ports), show(cfg.ports)));
    }
    if header.virtual_clock != virtual_clock {
        let show = |v: bool| if v { "a virtual clock" } else { "a real clock" }.to_string();
        return Err(mismatch(
            "clock",
            show(header.virtual_clock),
            show(virtual_clock),
        ));
    }
    if &header.tcp != tcp {
        return Err(mismatch(
            "protocol settings",
            format!("{:?}", header.tcp),
            format!("{tcp:?}"),
        ));
    }
    let clock = if virtual_clock {
        Clock::virtual_at(header.now_ms)
    } else {
        Clock::real_at(header.now_ms)
    };
    let table = Table::new(cfg.clone(), tcp.clone(), clock)?;
    let mut count = 0u64;
    let records = std::iter::from_fn(|| match next::<Record>(&mut r, &mut buf) {
        Ok(Some(rec)) => {
            count += 1;
            Some(Ok((ConnId(rec.id), rec.conn)))
        }
        Ok(None) => None,
        Err(why) => Some(Err(Loading::Damaged(why))),
    });
    table
        .restore(
            header.epoch,
            &header.totals,
            &header.ports_position,
            records,
        )
        .map_err(|e| match e {
            Loading::Damaged(why) => damaged(why),
            Loading::Restore(source) => StateError::Restore { path: p(), source },
        })?;
    let mut tail = [0u8; 8];
    r.read_exact(&mut tail)
        .map_err(|_| damaged("it ends before its count".into()))?;
    let written = u64::from_le_bytes(tail);
    let crc = r.crc.clone().finalize();
    let mut stored = [0u8; 4];
    r.inner
        .read_exact(&mut stored)
        .map_err(|_| damaged("it ends before its checksum".into()))?;
    if u32::from_le_bytes(stored) != crc {
        return Err(damaged("its checksum does not match".into()));
    }
    if written != count {
        return Err(damaged(format!("{count} connections of {written}")));
    }
    let mut rest = [0u8; 1];
    if r.inner.read(&mut rest).unwrap_or(0) != 0 {
        return Err(damaged("bytes after its checksum".into()));
    }
    Ok(Some((
        table,
        Summary {
            connections: count,
            bytes: r.bytes + 4,
            took: started.elapsed(),
        },
    )))
}

/// A fault while reading connections back.
enum Loading {
    Damaged(String),
    Restore(RestoreError),
}

impl From<RestoreError> for Loading {
    fn from(e: RestoreError) -> Loading {
        Loading::Restore(e)
    }
}

/// The next record, or `None` at the end marker.
fn next<T: for<'de> Deserialize<'de>>(
    r: &mut impl Read,
    buf: &mut Vec<u8>,
) -> Result<Option<T>, String> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)
        .map_err(|_| "it ends inside a record".to_string())?;
    let len = u32::from_le_bytes(len) as usize;
    if len == 0 {
        return Ok(None);
    }
    if len > 1 << 26 {
        return Err(format!("a record of {len} bytes"));
    }
    buf.resize(len, 0);
    r.read_exact(buf)
        .map_err(|_| "it ends inside a record".to_string())?;
    postcard::from_bytes(buf)
        .map(Some)
        .map_err(|e| format!("a record does not decode: {e}"))
}

#[cfg(test)]
mod tests;
