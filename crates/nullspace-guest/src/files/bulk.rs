//! Moving file bytes between an open file and an HTTP body at disk speed: one blocking thread per
//! transfer reads (or writes) the file in large chunks while the async side sends (or receives) the
//! body, with a few chunks in flight between them. Body chunks are written as they came (vectored
//! writes, no copy), file chunks are read straight into the buffers the body sends. A write that must be
//! durable starts the writeback of what it has written as it goes ([`Writeback`]), so the `fsync` at the
//! end waits for the tail only.

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsRawFd;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use tokio::sync::mpsc;

/// Size of one chunk read from a file.
pub const READ_CHUNK: usize = 1 << 20;
/// Chunks in flight between the file thread and the body.
const IN_FLIGHT: usize = 8;
/// Body chunks written by one vectored write at most.
const WRITE_BATCH: usize = 64;
/// Bytes written between two writeback starts.
const WRITEBACK_STEP: u64 = 8 << 20;

/// The chunks of `file` from its current offset to its end, read ahead on a blocking thread. The
/// thread ends at the end of the file, on a read error (the stream's last item), or when the stream is
/// dropped.
pub fn read_chunks(mut file: File) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let (sender, receiver) = mpsc::channel::<io::Result<Bytes>>(IN_FLIGHT);
    // SAFETY: a hint on a descriptor this function owns; no memory is passed.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL) };
    tokio::task::spawn_blocking(move || loop {
        let mut chunk = BytesMut::zeroed(READ_CHUNK);
        let read = match file.read(&mut chunk) {
            Ok(0) => return,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                let _ = sender.blocking_send(Err(error));
                return;
            }
        };
        chunk.truncate(read);
        if sender.blocking_send(Ok(chunk.freeze())).is_err() {
            return;
        }
    });
    futures::stream::unfold(receiver, |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) })
}

/// Starts the writeback of a file's bytes every [`WRITEBACK_STEP`] as they are written, so that a
/// final `fsync` has little left to wait for; the data is durable only once that `fsync` returns.
#[derive(Debug, Default)]
pub struct Writeback {
    started: u64,
    written: u64,
}

impl Writeback {
    /// Counts `len` more bytes written to `file` and starts the writeback of the ones not yet started
    /// once there are [`WRITEBACK_STEP`] of them (`SYNC_FILE_RANGE_WRITE`: no wait for the disk).
    pub fn advance(&mut self, file: &File, len: usize) {
        self.written += len as u64;
        if self.written - self.started < WRITEBACK_STEP {
            return;
        }
        // SAFETY: a syscall on an open descriptor with integer arguments. Failure only loses the head
        // start: the final `fsync` writes whatever is left.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                self.started as libc::off64_t,
                (self.written - self.started) as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        self.started = self.written;
    }
}

/// Where body chunks go: a blocking thread writing them to a file. Chunks are sent with
/// [`ChunkWriter::send`]; [`ChunkWriter::finish`] waits for the file to hold them all (and to be on disk
/// when `durable`); dropping it without `finish` abandons the write (nothing is synced).
pub struct ChunkWriter {
    sender: mpsc::Sender<Bytes>,
    thread: tokio::task::JoinHandle<io::Result<u64>>,
}

impl ChunkWriter {
    /// Starts writing to `file` from its current offset. With `durable`, a regular file is synced
    /// (`fsync`) before `finish` returns, its writeback started as it fills.
    pub fn start(file: File, durable: bool) -> Self {
        let (sender, receiver) = mpsc::channel::<Bytes>(IN_FLIGHT);
        let thread = tokio::task::spawn_blocking(move || write_all_chunks(file, receiver, durable));
        Self { sender, thread }
    }

    /// Queues `chunk`; an error means the writer stopped (the reason comes from `finish`).
    pub async fn send(&self, chunk: Bytes) -> Result<(), ()> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.sender.send(chunk).await.map_err(|_| ())
    }

    /// Marks the end of the bytes and waits until the file holds them (synced when durable): the bytes
    /// written.
    pub async fn finish(self) -> io::Result<u64> {
        // An empty chunk is the end marker; a closed channel without it is an abandoned write.
        let _ = self.sender.send(Bytes::new()).await;
        drop(self.sender);
        self.thread.await.map_err(|error| io::Error::other(format!("file writer failed: {error}")))?
    }
}

fn write_all_chunks(mut file: File, mut receiver: mpsc::Receiver<Bytes>, durable: bool) -> io::Result<u64> {
    let durable = durable && file.metadata()?.is_file();
    let mut writeback = Writeback::default();
    let mut batch: Vec<Bytes> = Vec::with_capacity(WRITE_BATCH);
    let mut total = 0u64;
    let mut ended = false;
    while !ended {
        let Some(first) = receiver.blocking_recv() else {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "the body ended before its end"));
        };
        ended = first.is_empty();
        if !ended {
            batch.push(first);
        }
        while !ended && batch.len() < WRITE_BATCH {
            match receiver.try_recv() {
                Ok(chunk) if chunk.is_empty() => ended = true,
                Ok(chunk) => batch.push(chunk),
                Err(_) => break,
            }
        }
        let len = write_batch(&mut file, &batch)?;
        batch.clear();
        total += len as u64;
        if durable {
            writeback.advance(&file, len);
        }
    }
    if durable {
        file.sync_all()?;
    }
    Ok(total)
}

/// Writes every chunk of `batch` with as few (vectored) writes as the kernel takes: the bytes written.
fn write_batch(file: &mut File, batch: &[Bytes]) -> io::Result<usize> {
    let mut slices: Vec<IoSlice<'_>> = batch.iter().map(|chunk| IoSlice::new(chunk)).collect();
    let mut slices = &mut slices[..];
    let mut total = 0;
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => {
                total += written;
                IoSlice::advance_slices(&mut slices, written);
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn chunks_round_trip_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let payload: Vec<u8> = (0..(3 * READ_CHUNK + 123)).map(|i| (i % 251) as u8).collect();
        let writer = ChunkWriter::start(File::create(&path).unwrap(), true);
        for piece in payload.chunks(70_000) {
            writer.send(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        assert_eq!(writer.finish().await.unwrap(), payload.len() as u64);
        let read: Vec<Bytes> = read_chunks(File::open(&path).unwrap()).map(Result::unwrap).collect().await;
        assert_eq!(read.len(), 4, "1 MiB chunks");
        assert_eq!(read.concat(), payload);
    }

    #[tokio::test]
    async fn an_abandoned_write_reports_it() {
        let dir = tempfile::tempdir().unwrap();
        let writer = ChunkWriter::start(File::create(dir.path().join("f")).unwrap(), true);
        writer.send(Bytes::from_static(b"abc")).await.unwrap();
        let ChunkWriter { sender, thread } = writer;
        drop(sender);
        assert_eq!(thread.await.unwrap().unwrap_err().kind(), io::ErrorKind::Interrupted);
    }
}
