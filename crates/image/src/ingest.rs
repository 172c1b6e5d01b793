//! One pass over a compressed layer as it arrives (from a registry or an
//! archive): the compressed bytes are hashed and written to the content
//! store, and decompressed, while a second thread unpacks the tar into its
//! snapshot and hashes it for the diff_id. Nothing is read twice and no
//! temp copy of the layer is made; on two cores the decompression and the
//! unpacking run side by side.
//!
//! ```text
//! reader ──► tee ──► BlobWriter (digest + size of the blob)
//!             │
//!             └──► decompress ──chunks──► [thread] Snapshotter::apply (diff_id)
//! ```

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::{ApplyOptions, decompress};
use crate::manifest::Descriptor;
use crate::snapshot::{SnapshotInfo, Snapshotter, chain_id};
use crate::store::{BlobInfo, BlobWriter, ContentStore};

/// Decompressed bytes handed to the unpacking thread at a time.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the threads (bounds the memory to ~2 MiB).
const DEPTH: usize = 8;

/// What [`store_and_apply`] did.
#[derive(Clone, Debug)]
pub struct Ingested {
    pub blob: BlobInfo,
    pub snapshot: SnapshotInfo,
    /// False when the blob and the snapshot were both there already and
    /// `reader` was not read.
    pub read: bool,
}

/// Stores the layer blob `desc` read from `reader` and unpacks it as the
/// snapshot of `diff_id` on top of `parent`, in one pass. The blob must
/// have `desc`'s digest and size and the tar `diff_id`; when either check
/// fails, what this call wrote is gone. A blob or snapshot already there is
/// kept (the blob is then rehashed from `reader` only if the snapshot is
/// missing, the snapshot rebuilt only if it is missing).
pub fn store_and_apply(
    content: &ContentStore,
    snapshots: &Snapshotter,
    parent: Option<&Digest>,
    desc: &Descriptor,
    diff_id: &Digest,
    reader: impl Read,
    opts: &ApplyOptions,
) -> Result<Ingested> {
    let chain = chain_id(parent, diff_id);
    let have_blob = content.has_blob(&desc.digest);
    if snapshots.exists(&chain) {
        let blob = if have_blob {
            BlobInfo {
                digest: desc.digest.clone(),
                size: content.blob_size(&desc.digest)?,
            }
        } else {
            content.write_blob_sized(reader, Some(&desc.digest), Some(desc.size))?
        };
        return Ok(Ingested {
            blob,
            snapshot: snapshots.info(&chain)?,
            read: !have_blob,
        });
    }
    let writer = if have_blob {
        None
    } else {
        Some(content.writer(Some(&desc.digest), Some(desc.size))?)
    };
    let mut tee = Tee {
        inner: reader,
        writer,
    };
    let snapshot = std::thread::scope(|scope| -> Result<SnapshotInfo> {
        let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(DEPTH);
        let unpacker = scope.spawn(move || -> Result<SnapshotInfo> {
            let mut chunks = ChunkReader {
                rx,
                cur: Vec::new(),
                pos: 0,
            };
            let r = snapshots.apply(parent, &mut chunks, diff_id, opts);
            // On success the unpacker has read to the end (the diff_id
            // covers the padding after the end marker); on failure,
            // dropping the receiver makes the feeder's next send fail, so
            // it stops instead of blocking on a full channel.
            drop(chunks);
            r
        });
        let fed = feed(&mut tee, &tx);
        drop(tx);
        let applied = unpacker
            .join()
            .map_err(|_| Error::Archive(format!("unpacking layer {} panicked", desc.digest)))?;
        // The stream's own error (a dropped connection, a bad gzip) says
        // more than the unpacker's "reading layer" that follows from it.
        fed?;
        applied
    })?;
    let blob = match tee.writer {
        Some(w) => w.commit()?,
        None => BlobInfo {
            digest: desc.digest.clone(),
            size: content.blob_size(&desc.digest)?,
        },
    };
    Ok(Ingested {
        blob,
        snapshot,
        read: true,
    })
}

/// Decompresses `tee` into chunks for the unpacker, then reads what the
/// decompressor left of the stream so that the blob is whole. Stops early
/// (without error) when the unpacker is gone: its error is the one to
/// report.
fn feed<R: Read>(tee: &mut Tee<R>, tx: &SyncSender<io::Result<Vec<u8>>>) -> Result<()> {
    {
        let (_, mut decoded) = decompress(&mut *tee)?;
        loop {
            let mut buf = vec![0u8; CHUNK];
            let mut n = 0;
            while n < CHUNK {
                match decoded.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let msg = e.to_string();
                        let _ = tx.send(Err(io::Error::new(e.kind(), msg.clone())));
                        return Err(Error::Archive(format!("decompressing the layer: {msg}")));
                    }
                }
            }
            if n == 0 {
                break;
            }
            buf.truncate(n);
            if tx.send(Ok(buf)).is_err() {
                return Ok(());
            }
        }
    }
    io::copy(tee, &mut io::sink()).map_err(|e| Error::Sys {
        what: "reading the rest of the layer".into(),
        err: e,
    })?;
    Ok(())
}

/// Passes bytes through, copying them into the blob writer.
struct Tee<R> {
    inner: R,
    writer: Option<BlobWriter>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(w) = &mut self.writer {
            w.append(&buf[..n]).map_err(io::Error::other)?;
        }
        Ok(n)
    }
}

/// The unpacker's side of the channel as a `Read`.
struct ChunkReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The sender is done: end of stream.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
