//! Reading a staged upload as one byte stream: the parts in order, each from its start, optionally
//! hashed as they are read. Constant memory whatever the upload size. The parts are opened by guestd
//! itself (the staging directory is its own) before the upload is published with the credentials of
//! the upload's user.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// Opens the part files `paths`, in order.
pub fn open_parts(paths: &[PathBuf]) -> io::Result<Vec<File>> {
    paths.iter().map(File::open).collect()
}

/// The parts of an upload, read back to back.
pub struct PartsReader {
    parts: std::vec::IntoIter<File>,
    current: Option<File>,
}

impl PartsReader {
    /// Reads the open `parts` in order, each from its start (a second reader of the same parts, over
    /// duplicated descriptors, reads them all again).
    pub fn new(parts: Vec<File>) -> Self {
        Self { parts: parts.into_iter(), current: None }
    }
}

impl Read for PartsReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.current.is_none() {
                match self.parts.next() {
                    Some(mut part) => {
                        part.rewind()?;
                        self.current = Some(part);
                    }
                    None => return Ok(0),
                }
            }
            if let Some(file) = self.current.as_mut() {
                let n = file.read(buffer)?;
                if n > 0 || buffer.is_empty() {
                    return Ok(n);
                }
                self.current = None;
            }
        }
    }
}

/// A reader that hashes (sha256) and counts everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    /// Hashes what is read from `inner`.
    pub fn new(inner: R) -> Self {
        Self { inner, hasher: Sha256::new(), bytes: 0 }
    }

    /// Reads the rest (so the digest covers everything) and returns the hex digest and byte count.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((hex::encode(self.hasher.finalize()), self.bytes))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_parts_back_to_back_and_hashes_them() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = ["ab", "", "cde"]
            .iter()
            .enumerate()
            .map(|(n, text)| {
                let path = dir.path().join(n.to_string());
                std::fs::write(&path, text).unwrap();
                path
            })
            .collect();
        let mut text = String::new();
        let parts = open_parts(&paths).unwrap();
        let again: Vec<File> = parts.iter().map(|part| part.try_clone().unwrap()).collect();
        PartsReader::new(parts).read_to_string(&mut text).unwrap();
        assert_eq!(text, "abcde");
        let (digest, bytes) = HashingReader::new(PartsReader::new(again)).finish().unwrap();
        assert_eq!(bytes, 5);
        assert_eq!(digest, hex::encode(Sha256::digest(b"abcde")));
    }
}
